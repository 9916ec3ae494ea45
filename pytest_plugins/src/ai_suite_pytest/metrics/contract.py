"""The metrics contract: which metrics each service exposes, their types, units and labels.

Checked against live expositions: a metric that is undeclared, missing,
wrongly typed or wrongly labelled is a violation, reported all at once.

File format (YAML)::

    version: 1
    standard: ["process_.*", "python_.*"]   # client-library families, allowed anywhere
    metrics:
      http_requests_total:
        type: counter
        help: "..."              # optional: exact help text
        unit: ""                 # optional: the name must end in _<unit> (before _total)
        services: [gateway]      # optional: default every service
        labels:
          status: {regex: "[1-5][0-9][0-9]"}
          method: [GET, POST]    # a list of allowed values
          route: any             # any value
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ai_suite_pytest.metrics.exposition import Snapshot

TYPES = frozenset({"counter", "gauge", "histogram", "summary", "info", "stateset"})
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class ContractError(ValueError):
    """The contract file itself is invalid."""


@dataclass(frozen=True)
class LabelRule:
    values: frozenset[str] | None = None
    regex: re.Pattern[str] | None = None

    def allows(self, value: str) -> bool:
        if self.values is not None:
            return value in self.values
        if self.regex is not None:
            return self.regex.fullmatch(value) is not None
        return True

    def describe(self) -> str:
        if self.values is not None:
            return "one of " + ", ".join(sorted(self.values))
        if self.regex is not None:
            return f"matching /{self.regex.pattern}/"
        return "any value"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str
    labels: Mapping[str, LabelRule]
    help: str | None = None
    unit: str = ""
    services: frozenset[str] | None = None  # None: every service

    def applies_to(self, service: str | None) -> bool:
        return self.services is None or service is None or service in self.services


@dataclass(frozen=True)
class Violation:
    kind: str  # undeclared | missing | type | labels | value | help
    metric: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.metric}: {self.detail}"


@dataclass
class ContractReport:
    service: str | None
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def format(self) -> str:
        who = f"service {self.service!r}" if self.service else "the exposition"
        if self.ok:
            return f"{who} matches the metrics contract"
        lines = [f"{who} breaks the metrics contract ({len(self.violations)} problem(s)):"]
        lines += [f"  {v}" for v in sorted(self.violations, key=lambda v: (v.kind, v.metric))]
        return "\n".join(lines)


def _label_rule(metric: str, label: str, raw: Any) -> LabelRule:
    if raw is None or raw == "any":
        return LabelRule()
    if isinstance(raw, list):
        return LabelRule(values=frozenset(str(v) for v in raw))
    if isinstance(raw, dict) and set(raw) == {"regex"}:
        try:
            return LabelRule(regex=re.compile(str(raw["regex"])))
        except re.error as exc:
            raise ContractError(f"{metric}: label {label}: bad regex ({exc})") from exc
    raise ContractError(
        f"{metric}: label {label}: expected a list of values, {{regex: ...}} or 'any', got {raw!r}"
    )


def _spec(name: str, raw: Any) -> MetricSpec:
    if not isinstance(raw, dict):
        raise ContractError(f"{name}: expected a mapping, got {raw!r}")
    if not _NAME.match(name):
        raise ContractError(f"{name}: not a valid metric name")
    kind = raw.get("type")
    if kind not in TYPES:
        raise ContractError(f"{name}: type must be one of {', '.join(sorted(TYPES))}, got {kind!r}")
    if (kind == "counter") != name.endswith("_total"):
        raise ContractError(f"{name}: only counters, and every counter, end in _total")
    unit = str(raw.get("unit") or "")
    base = name[: -len("_total")] if kind == "counter" else name
    if unit and not base.endswith(f"_{unit}"):
        raise ContractError(f"{name}: unit {unit!r} must be the name's suffix")
    labels_raw = raw.get("labels") or {}
    if not isinstance(labels_raw, dict):
        raise ContractError(f"{name}: labels must be a mapping of label name to rule")
    services = raw.get("services")
    return MetricSpec(
        name=name,
        type=kind,
        labels={str(k): _label_rule(name, str(k), v) for k, v in labels_raw.items()},
        help=raw.get("help"),
        unit=unit,
        services=frozenset(map(str, services)) if services is not None else None,
    )


@dataclass(frozen=True)
class Contract:
    metrics: Mapping[str, MetricSpec]
    standard: tuple[re.Pattern[str], ...] = ()
    source: str = "<contract>"

    @classmethod
    def from_dict(cls, data: Any, source: str = "<contract>") -> Contract:
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            raise ContractError(f"{source}: expected a mapping with a 'metrics' mapping")
        try:
            standard = tuple(re.compile(p) for p in data.get("standard") or [])
        except re.error as exc:
            raise ContractError(f"{source}: bad 'standard' pattern ({exc})") from exc
        metrics = {str(n): _spec(str(n), raw) for n, raw in data["metrics"].items()}
        return cls(metrics=metrics, standard=standard, source=source)

    @classmethod
    def load(cls, path: Path | str) -> Contract:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ContractError(f"cannot read metrics contract {path}: {exc}") from exc
        return cls.from_dict(data, str(path))

    def is_standard(self, name: str) -> bool:
        return any(p.fullmatch(name) for p in self.standard)

    def for_service(self, service: str | None) -> dict[str, MetricSpec]:
        return {n: s for n, s in self.metrics.items() if s.applies_to(service)}

    def check(self, snapshot: Snapshot, service: str | None = None) -> ContractReport:
        report = ContractReport(service)
        add = report.violations.append
        expected = self.for_service(service)
        for name, family in snapshot.families.items():
            spec = self.metrics.get(name)
            if spec is None:
                if not self.is_standard(name):
                    add(Violation("undeclared", name, f"{family.type} not in {self.source}"))
                continue
            if not spec.applies_to(service):
                owners = ", ".join(sorted(spec.services or ()))
                add(Violation("undeclared", name, f"declared only for {owners}"))
                continue
            if family.type != spec.type:
                add(Violation("type", name, f"exposed as {family.type}, declared {spec.type}"))
            if not family.help.strip():
                add(Violation("help", name, "no help text"))
            elif spec.help is not None and family.help != spec.help:
                add(Violation("help", name, f"help is {family.help!r}, declared {spec.help!r}"))
            self._check_labels(spec, snapshot, name, add)
        for name in sorted(set(expected) - set(snapshot.families)):
            add(Violation("missing", name, f"declared {expected[name].type}, not exposed"))
        return report

    @staticmethod
    def _check_labels(spec: MetricSpec, snapshot: Snapshot, name: str, add: Any) -> None:
        family = snapshot.families[name]
        declared = set(spec.labels)
        seen_bad: set[tuple[str, str]] = set()
        for _sample, labels in family.samples:
            have = {k: v for k, v in labels if k not in ("le", "quantile")}
            if set(have) != declared:
                extra, lacking = set(have) - declared, declared - set(have)
                detail = f"labels {sorted(have)}, declared {sorted(declared)}"
                if extra:
                    detail += f" (undeclared: {', '.join(sorted(extra))})"
                if lacking:
                    detail += f" (missing: {', '.join(sorted(lacking))})"
                add(Violation("labels", name, detail))
                return
            for label, value in have.items():
                rule = spec.labels[label]
                if not rule.allows(value) and (label, value) not in seen_bad:
                    seen_bad.add((label, value))
                    add(
                        Violation(
                            "value", name, f"{label}={value!r} is not allowed ({rule.describe()})"
                        )
                    )
