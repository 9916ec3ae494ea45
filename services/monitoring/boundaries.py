"""Boundary tests of the alert rules, generated from a declarative spec.

Hand-written rule tests use comfortable values (60 failures where 30 is the threshold), so a
threshold or a ``for`` can drift without any test noticing. ``docker/prometheus/boundaries.yml``
pins, per alert, the threshold and the ``for`` *independently of the rule*, and says which
series to synthesize. From it this module writes ``promtool test rules`` groups:

- ``below``: the input just below the threshold, held long past ``for``: never fires;
- ``above``: just above the threshold: fires exactly ``onset + for`` after the step;
- ``pending``: one evaluation interval earlier the alert is pending, not firing.

``onset`` is how long after the step the rule's condition first holds (0 for a gauge, the
rate window for a counter read through ``rate(...[5m])``), so a changed window moves the
firing time and breaks ``above``/``pending`` too. The group names name the alert and the case,
and promtool prints the name of each failing group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.core.yamlfile import safe_load
from services.monitoring.durations import parse_duration

_THRESHOLD = re.compile(r"^\s*(>=|>)\s*(-?[0-9.]+(?:e-?\d+)?)\s*$")
# How far "just below" and "just above" are from a threshold, relative: close enough that
# any change of the threshold in the rule moves it across one of the two, far enough that
# the floating-point error of rate() cannot.
DEFAULT_MARGIN = 0.02
# Time before the step: counters and gauges sit at their `before` value first, so rates and
# ratios start from a filled window and `onset` is measured from a known state.
LEAD_STEPS = 10
# After the firing time: `below` is evaluated this long past it.
TAIL_STEPS = 10


class BoundarySpecError(ValueError):
    """The boundary spec is malformed."""


@dataclass(frozen=True)
class Series:
    """One synthesized input. ``kind``: gauge (value), counter (increase per interval) or
    histogram (a classic histogram whose ``quantile`` is exactly the input value)."""

    selector: str
    kind: str
    before: float
    base: float
    per_unit: float
    quantile: float | None = None
    steady: bool = False  # the after level from the first sample on: no step at all

    def after(self, x: float) -> float:
        return self.base + self.per_unit * x


@dataclass(frozen=True)
class Boundary:
    alert: str
    variant: str
    op: str | None
    threshold: float | None
    silent: float
    fires: float
    for_seconds: float
    onset_seconds: float
    interval_seconds: float
    labels: Mapping[str, str]
    series: tuple[Series, ...] = field(default_factory=tuple)
    always: bool = False  # Watchdog: fires with no input at all, no threshold to pin

    @property
    def title(self) -> str:
        return f"{self.alert} ({self.variant})" if self.variant else self.alert

    def steps(self, seconds: float) -> int:
        count = seconds / self.interval_seconds
        if count != int(count):
            raise BoundarySpecError(
                f"{self.title}: {seconds:g}s is not a multiple of the interval"
                f" {self.interval_seconds:g}s"
            )
        return int(count)


def _x_values(alert: str, raw: Mapping[str, Any]) -> tuple[str | None, float | None, float, float]:
    if raw.get("always"):
        return None, None, 0.0, 0.0
    if "values" in raw:
        values = raw["values"]
        return None, None, float(values["silent"]), float(values["fires"])
    match = _THRESHOLD.match(str(raw.get("threshold", "")))
    if not match:
        raise BoundarySpecError(
            f"{alert}: threshold must be '> N' or '>= N', or give values: {{silent, fires}}"
        )
    op, threshold = match.group(1), float(match.group(2))
    if "step" in raw:
        # Integer quantities (pending approvals): the neighbours are whole numbers.
        step = float(raw["step"])
        below, above = (threshold, threshold + step) if op == ">" else (threshold - step, threshold)
    else:
        margin = float(raw.get("margin", DEFAULT_MARGIN))
        below, above = threshold * (1 - margin), threshold * (1 + margin)
    return op, threshold, below, above


def _series(alert: str, raw: Mapping[str, Any]) -> Series:
    kind = raw.get("kind", "gauge")
    if kind not in ("gauge", "counter", "histogram"):
        raise BoundarySpecError(f"{alert}: series kind must be gauge, counter or histogram")
    after = raw.get("after", {"per_unit": 1})
    if not isinstance(after, Mapping):
        after = {"base": after, "per_unit": 0}
    return Series(
        selector=str(raw["series"]),
        kind=kind,
        before=float(raw.get("before", 0)),
        base=float(after.get("base", 0)),
        per_unit=float(after.get("per_unit", 0)),
        quantile=float(raw["quantile"]) if kind == "histogram" else None,
        steady=bool(raw.get("steady", False)),
    )


def load_boundaries(path: Path) -> list[Boundary]:
    data = safe_load(path.read_text()) or {}
    boundaries = []
    for alert, entries in (data.get("alerts") or {}).items():
        for raw in entries if isinstance(entries, list) else [entries]:
            op, threshold, silent, fires = _x_values(alert, raw)
            boundary = Boundary(
                alert=alert,
                variant=str(raw.get("variant", "")),
                op=op,
                threshold=threshold,
                silent=silent,
                fires=fires,
                for_seconds=parse_duration(raw.get("for", "0s")),
                onset_seconds=parse_duration(raw.get("onset", "0s")),
                interval_seconds=parse_duration(raw.get("interval", "1m")),
                labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
                series=tuple(_series(alert, s) for s in raw.get("series") or []),
                always=bool(raw.get("always", False)),
            )
            if not boundary.series and not boundary.always:
                raise BoundarySpecError(f"{boundary.title}: no series to synthesize")
            boundary.steps(boundary.for_seconds + boundary.onset_seconds)
            boundaries.append(boundary)
    return boundaries


def _number(value: float) -> str:
    # Enough digits for the margins, none of binary noise (0.1 + 0.2).
    return format(round(value, 9), "g") if value != int(value) else str(int(value))


def _with_label(selector: str, label: str, value: str) -> str:
    name, _, rest = selector.partition("{")
    inner = rest.rstrip("}")
    return f'{name}{{{inner + "," if inner else ""}{label}="{value}"}}'


def _input_series(boundary: Boundary, x: float, total: int) -> list[dict[str, str]]:
    out = []
    for series in boundary.series:
        level = series.after(x)
        before = level if series.steady else series.before
        if series.kind == "gauge":
            values = [before if i < LEAD_STEPS else level for i in range(total)]
            out.append({"series": series.selector, "values": " ".join(map(_number, values))})
            continue
        counts, running = [], 0.0
        for i in range(total):
            if i > 0:
                running += before if i <= LEAD_STEPS else level
            counts.append(running)
        text = " ".join(map(_number, counts))
        if series.kind == "counter":
            out.append({"series": series.selector, "values": text})
            continue
        # histogram_quantile interpolates linearly from 0 inside the lowest bucket: with every
        # observation in a bucket whose upper bound is x / q, the q-quantile is exactly x.
        upper = _number(x / (series.quantile or 1.0))
        zeros = " ".join("0" for _ in range(total))
        for le, values in ((upper, text), ("+Inf", text), ("0", zeros)):
            out.append({"series": _with_label(series.selector, "le", le), "values": values})
    return out


def _duration(seconds: float) -> str:
    return f"{int(seconds)}s"


def _alerts_check(boundary: Boundary, at: float, state: str | None) -> dict[str, Any]:
    """ALERTS at ``at``: one sample in ``state`` (pending, firing), or none at all (None).

    ALERTS rather than alert_rule_test: it carries the state, so "pending" is checkable, and
    no annotations, which the hand-written rule tests already pin.
    """
    if state is None:
        query = {"alertname": boundary.alert}
    elif state == "not firing":
        query = {"alertname": boundary.alert, "alertstate": "firing"}
        state = None
    else:
        query = {"alertname": boundary.alert, "alertstate": state, **boundary.labels}
    selector = ",".join(f'{k}="{v}"' for k, v in sorted(query.items()))
    samples = [{"labels": f"ALERTS{{{selector}}}", "value": 1}] if state else []
    return {"expr": f"ALERTS{{{selector}}}", "eval_time": _duration(at), "exp_samples": samples}


def _group(
    boundary: Boundary, case: str, x: float, checks: list[tuple[float, str | None]]
) -> dict[str, Any]:
    # promtool 2.42 evaluates the rules up to the last eval_time of a group but, for rules
    # that read recording rules, the last round is not visible to a query at that same time
    # (seen: an alert firing at 20m was absent at 20m and present when 21m was also asked).
    # One more trivial query an interval later makes every checked time fully evaluated.
    end = max(t for t, _ in checks) + boundary.interval_seconds
    total = boundary.steps(end) + 2
    tests = [_alerts_check(boundary, t, state) for t, state in checks]
    tests.append(
        {
            "expr": "vector(1)",
            "eval_time": _duration(end),
            "exp_samples": [{"labels": "{}", "value": 1}],
        }
    )
    return {
        "name": f"boundary {boundary.title}: {case}",
        "interval": _duration(boundary.interval_seconds),
        "input_series": _input_series(boundary, x, total),
        "promql_expr_test": tests,
    }


def boundary_groups(boundary: Boundary) -> list[dict[str, Any]]:
    """The promtool test groups of one boundary: below, above and (with a ``for``) pending."""
    step = boundary.interval_seconds
    start = LEAD_STEPS * step
    fire_at = start + boundary.onset_seconds + boundary.for_seconds
    if boundary.always:
        return [_group(boundary, "always fires", 0.0, [(start, "firing")])]
    if boundary.op is None:
        silent_case, firing_case = "the silent value stays silent", "the firing value fires"
    else:
        t = _number(boundary.threshold or 0)
        silent_case = f"just below the threshold ({boundary.op} {t}) stays silent"
        firing_case = f"just above the threshold ({boundary.op} {t}) fires after onset + for"
    groups = [
        # Not even pending: the condition itself never holds just below the threshold.
        _group(boundary, silent_case, boundary.silent, [(fire_at + TAIL_STEPS * step, None)]),
        # Firing at onset + for, with the labels the spec expects.
        _group(boundary, firing_case, boundary.fires, [(fire_at, "firing")]),
    ]
    if boundary.for_seconds:
        # One interval earlier the alert is pending, not firing: a shorter `for`, or a
        # shorter rate window (an earlier onset), makes it fire here.
        groups.append(
            _group(
                boundary,
                "for minus one interval is still pending",
                boundary.fires,
                # Both: a query looks back 5 minutes, so a pending sample from before an
                # early switch to firing would still be found on its own.
                [(fire_at - step, "pending"), (fire_at - step, "not firing")],
            )
        )
    return groups


def promtool_documents(
    boundaries: Iterable[Boundary], rule_files: Iterable[Path]
) -> dict[str, dict[str, Any]]:
    """``promtool test rules`` documents against ``rule_files``, one per interval.

    promtool has one evaluation interval per file; each boundary is evaluated at its own
    interval (10 s for ServiceDown's 30 s ``for``), so "one interval before" is exact.
    """
    files = [Path(p) for p in rule_files]
    # promtool evaluates rule groups in map order unless told otherwise: an alert reading a
    # recording rule then sees this round's value in some runs and the last round's in
    # others, and the firing time moves by one interval at random. The files' order (recording
    # rules first) fixes it; group names must be unique across files for this to hold.
    order = [
        str(group["name"])
        for path in files
        for group in (safe_load(path.read_text()) or {}).get("groups") or []
    ]
    documents: dict[str, dict[str, Any]] = {}
    for boundary in boundaries:
        interval = _duration(boundary.interval_seconds)
        document = documents.setdefault(
            interval,
            {
                "rule_files": [str(p) for p in files],
                "evaluation_interval": interval,
                "group_eval_order": order,
                "tests": [],
            },
        )
        document["tests"] += boundary_groups(boundary)
    return documents


def missing_boundaries(alerts: Iterable[str], boundaries: Iterable[Boundary]) -> list[str]:
    """Alerts of the rule files without a boundary spec: a new alert cannot skip them."""
    covered = {b.alert for b in boundaries}
    return sorted(set(alerts) - covered)


# promtool names a failed promql_expr_test by its expression and time, not by its group.
_FAILED_CHECK = re.compile(r'^\s*expr: "(?P<expr>(?:[^"\\]|\\.)*)", time: (?P<time>\S+?),?\s*$')


def failed_cases(promtool_output: str, document: Mapping[str, Any]) -> list[str]:
    """The names ("boundary <alert>: <case>") of the groups of ``document`` whose checks
    promtool reports as failed; every check's (expression, time) pair is unique."""
    owner = {
        (check["expr"], parse_duration(check["eval_time"])): group["name"]
        for group in document["tests"]
        for check in group.get("promql_expr_test") or []
    }
    names: list[str] = []
    for line in promtool_output.splitlines():
        match = _FAILED_CHECK.match(line)
        if not match:
            continue
        expr = match["expr"].replace('\\"', '"')
        name = owner.get((expr, parse_duration(match["time"])))
        if name is None:
            name = f"unattributed promtool failure: {line.strip()}"
        if name not in names:
            names.append(name)
    return names
