"""Check PromQL against the metrics the platform declares (the metrics contract).

A query that names a metric nobody emits, or a label the metric does not have
(``status_code`` instead of ``status``), returns nothing and never fires: the silent failure
this module exists to catch. The catalog is built by the caller (the tests build it from
``tests/metrics_contract.yaml``), plus Prometheus' own series and recording-rule outputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.monitoring.promql import PromQLSyntaxError, analyze

# Labels every scraped series gets from the target (prometheus.yml): job, instance and
# the `service` target label.
TARGET_LABELS = frozenset({"job", "instance", "service"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_VARIABLE = re.compile(r"\$")


@dataclass(frozen=True)
class LabelValues:
    """The values a label may take: a fixed set, a regex, or anything (both None)."""

    values: frozenset[str] | None = None
    pattern: re.Pattern[str] | None = None

    def allows(self, value: str) -> bool:
        if self.values is not None:
            return value in self.values
        return self.pattern is None or self.pattern.fullmatch(value) is not None


@dataclass(frozen=True)
class MetricDecl:
    name: str
    type: str
    labels: Mapping[str, LabelValues] = field(default_factory=dict)
    open_labels: bool = False  # e.g. ALERTS carries whatever labels the alerts have


@dataclass
class Catalog:
    metrics: dict[str, MetricDecl] = field(default_factory=dict)
    standard: tuple[re.Pattern[str], ...] = ()

    def add(self, decl: MetricDecl) -> None:
        self.metrics[decl.name] = decl

    def resolve(self, name: str) -> tuple[MetricDecl | None, set[str]]:
        """The declaration behind a series name, and the extra labels its suffix adds."""
        if name in self.metrics:
            return self.metrics[name], set()
        for suffix in HISTOGRAM_SUFFIXES:
            base = name.removesuffix(suffix)
            decl = self.metrics.get(base)
            if base != name and decl is not None and decl.type in ("histogram", "summary"):
                return decl, {"le"} if suffix == "_bucket" else set()
        if any(p.fullmatch(name) for p in self.standard):
            return MetricDecl(name, "standard"), set()
        return None, set()


def prometheus_builtins() -> list[MetricDecl]:
    """Series Prometheus writes itself: scrape health and alert state."""
    return [
        MetricDecl("up", "gauge"),
        MetricDecl("scrape_duration_seconds", "gauge"),
        MetricDecl("scrape_samples_scraped", "gauge"),
        MetricDecl(
            "ALERTS",
            "gauge",
            {
                "alertname": LabelValues(),
                "alertstate": LabelValues(frozenset({"firing", "pending"})),
            },
            open_labels=True,
        ),
    ]


@dataclass(frozen=True)
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def check_expression(catalog: Catalog, expr: str, where: str) -> list[Problem]:
    """Every metric and label ``expr`` uses must be declared in ``catalog``."""
    try:
        analysis = analyze(expr)
    except PromQLSyntaxError as exc:
        return [Problem(where, str(exc))]
    problems = []
    known_labels: set[str] = set(TARGET_LABELS)
    open_labels = False
    for selector in analysis.selectors:
        if selector.metric is None:
            problems.append(Problem(where, f"selector without a metric name: {selector}"))
            continue
        decl, extra = catalog.resolve(selector.metric)
        if decl is None:
            problems.append(Problem(where, f"metric {selector.metric} is not declared"))
            continue
        allowed = set(decl.labels) | TARGET_LABELS | extra
        known_labels |= allowed
        open_labels |= decl.open_labels
        for matcher in selector.matchers:
            if matcher.label == "__name__":
                continue
            if matcher.label not in allowed and not decl.open_labels:
                problems.append(
                    Problem(
                        where,
                        f"{selector.metric} has no label {matcher.label!r}"
                        f" (labels: {', '.join(sorted(allowed))})",
                    )
                )
                continue
            problems += _check_value(decl, matcher.label, matcher.op, matcher.value, where)
    unknown = analysis.grouping_labels - known_labels
    if unknown and not open_labels:
        problems.append(
            Problem(
                where,
                f"grouping by label(s) {', '.join(sorted(unknown))} that no selected metric has",
            )
        )
    return problems


def _check_value(decl: MetricDecl, label: str, op: str, value: str, where: str) -> list[Problem]:
    rule = decl.labels.get(label)
    if rule is None or _VARIABLE.search(value) or op in ("!=", "!~"):
        return []
    if op == "=" and not rule.allows(value):
        return [Problem(where, f"{decl.name}{{{label}={value!r}}} can never match: not allowed")]
    if op == "=~" and rule.values is not None:
        try:
            pattern = re.compile(value)
        except re.error as exc:
            return [Problem(where, f"bad regex {value!r} for {label}: {exc}")]
        if not any(pattern.fullmatch(v) for v in rule.values):
            return [
                Problem(
                    where,
                    f"{decl.name}{{{label}=~{value!r}}} matches none of"
                    f" {', '.join(sorted(rule.values))}",
                )
            ]
    return []


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str
    labels: Mapping[str, str] = field(default_factory=dict)


def add_recording_rules(catalog: Catalog, rules: Iterable[RecordingRule]) -> None:
    """Declare each rule's output: its labels are the ``by`` labels of its expression, those
    of the recorded series it combines, and its static labels."""
    pending = list(rules)
    for _ in range(len(pending) + 1):  # rules may use rules defined further down
        for rule in pending:
            analysis = analyze(rule.expr)
            labels = set(analysis.grouping_labels) | set(rule.labels)
            for metric in analysis.metrics:
                decl = catalog.metrics.get(metric)
                if decl is not None and ":" in metric:
                    labels |= set(decl.labels)
            if "histogram_quantile" in analysis.functions:
                labels.discard("le")
            catalog.add(MetricDecl(rule.record, "gauge", {name: LabelValues() for name in labels}))
