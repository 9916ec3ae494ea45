"""Assertions over two snapshots: counter deltas, histograms, gauges.

Every failure says what was expected, what was found, and which series come
closest (with their values), so a typo in a name or label is obvious.
A name that the exposition does not know always fails, even when the expected
change is zero (Go's testutil passes silently there, client_golang#1351).

Deltas handle counter resets as PromQL's ``increase()`` does: over consecutive
values, a value lower than the one before means the counter restarted from 0,
so that step adds the new value (not the negative difference). ``history`` is
the scrapes between ``before`` and ``after`` (a watch's background scrapes): with
them, what a counter gained before a restart is counted too. A histogram
series (its ``_count``, ``_sum`` and ``_bucket`` together) restarted when its
count or any bucket went down; ``_sum`` alone is never used to detect a restart
(negative observations can lower it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from ai_suite_pytest.metrics.exposition import Family, Labels, Snapshot, format_series
from ai_suite_pytest.metrics.matching import nearest, nearest_names, select


class MetricsAssertionError(AssertionError):
    """A metrics assertion failed; the message lists the nearest series."""


def _fail(
    message: str,
    after: Snapshot,
    name: str,
    labels: Mapping[str, str],
    before: Snapshot | None = None,
) -> NoReturn:
    __tracebackhide__ = True
    near = nearest(after.full(), name, labels, before=before.full() if before else None)
    listing = "\n".join(f"  {line}" for line in near) or "  (the exposition has no series)"
    raise MetricsAssertionError(f"{message}\nnearest series:\n{listing}")


def resolve(snapshot: Snapshot, name: str, labels: Mapping[str, str]) -> Family:
    """The family called ``name``; unknown names and unknown label names fail loudly."""
    __tracebackhide__ = True
    family = snapshot.family_of(name)
    if family is None or (family.partial and set(labels) - family.label_names()):
        # A view holds only the lines that can match ``labels``: the whole family decides
        # whether the name and the label names exist.
        family = snapshot.full().family_of(name)
    if family is None:
        whole = snapshot.full()
        close = nearest_names(whole, name)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise MetricsAssertionError(
            f"metric {name!r} is not in the exposition ({len(whole.families)} families)" f"{hint}"
        )
    known = family.label_names()
    unknown = sorted(set(labels) - known)
    if unknown and family.samples:
        raise MetricsAssertionError(
            f"{name} has no label {', '.join(map(repr, unknown))}; its labels are "
            f"{', '.join(sorted(known)) or '(none)'}"
        )
    return family


def _sample_name(family: Family, name: str, suffix: str) -> str:
    if family.type in ("histogram", "summary", "gaugehistogram") and name == family.name:
        return f"{name}{suffix}"
    return name


def _one_or_sum(
    matched: dict[Labels, float],
    *,
    aggregate: bool,
    what: str,
    after: Snapshot,
    sample: str,
    labels: Mapping[str, str],
) -> float:
    if len(matched) > 1 and not aggregate:
        listing = "\n".join(f"  {format_series(sample, k)} = {v:g}" for k, v in matched.items())
        raise MetricsAssertionError(
            f"{what}: {len(matched)} series of {sample} match {dict(labels)}; give more labels "
            f"or pass aggregate=True to sum them:\n{listing}"
        )
    return sum(matched.values())


def increase(values: Sequence[float | None]) -> float:
    """What a counter gained over consecutive values, PromQL-style; None is an absent series.

    A series absent at first counts from 0 (born during the test); a drop, or a
    series that vanished and came back, is a restart: that step adds the new value.
    """
    total = 0.0
    previous = values[0] if values and values[0] is not None else 0.0  # the baseline
    for value in values[1:]:
        if value is None:  # gone (the process restarted and has not recreated it yet)
            previous = 0.0
            continue
        total += value - previous if value >= previous else value
        previous = value
    return total


def _views(
    snapshots: Sequence[Snapshot], names: list[str], labels: Mapping[str, str]
) -> list[Snapshot]:
    """Each snapshot cut down to the families of ``names`` and the lines ``labels`` allow."""
    return [snapshot.view(names, labels) for snapshot in snapshots]


def counter_delta(
    before: Snapshot,
    after: Snapshot,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    aggregate: bool = False,
    history: Sequence[Snapshot] = (),
) -> float:
    """How much the matching counter grew (resets handled, see the module docstring)."""
    __tracebackhide__ = True
    labels = dict(labels or {})
    points = _views([before, *history, after], [name], labels)
    family = resolve(points[-1], name, labels)
    sample = _sample_name(family, name, "_total")
    selected = [select(point, sample, labels) for point in points]
    keys = {key for values in selected for key in values}
    deltas = {key: increase([values.get(key) for values in selected]) for key in keys}
    return _one_or_sum(
        deltas,
        aggregate=aggregate,
        what="counter delta",
        after=points[-1],
        sample=sample,
        labels=labels,
    )


def assert_counter_delta(
    before: Snapshot,
    after: Snapshot,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    delta: float,
    aggregate: bool = False,
    history: Sequence[Snapshot] = (),
) -> None:
    __tracebackhide__ = True
    labels = dict(labels or {})
    got = counter_delta(before, after, name, labels, aggregate=aggregate, history=history)
    if not math.isclose(got, delta, rel_tol=1e-9, abs_tol=1e-9):
        _fail(
            f"expected {name}{labels or ''} to grow by {delta:g}, it grew by {got:g}",
            after,
            name,
            labels,
            before,
        )


@dataclass(frozen=True)
class HistogramDelta:
    count: float
    sum: float
    buckets: dict[float, float]  # upper bound -> observations added at or below it


def _histogram_states(
    point: Snapshot, name: str, labels: Mapping[str, str]
) -> dict[Labels, tuple[float, float, dict[float, float]]]:
    """Series (labels without ``le``) -> (count, sum, {bound: cumulative count})."""
    sums = select(point, f"{name}_sum", labels)
    states: dict[Labels, tuple[float, float, dict[float, float]]] = {
        key: (count, sums.get(key, 0.0), {})
        for key, count in select(point, f"{name}_count", labels).items()
    }
    for key, value in select(point, f"{name}_bucket", labels).items():
        series = tuple((k, v) for k, v in key if k != "le")
        state = states.setdefault(series, (0.0, sums.get(series, 0.0), {}))
        state[2][float(dict(key)["le"])] = value
    return states


def histogram_delta(
    before: Snapshot,
    after: Snapshot,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    aggregate: bool = False,
    history: Sequence[Snapshot] = (),
) -> HistogramDelta:
    """New observations of the matching histogram series (resets handled per series)."""
    __tracebackhide__ = True
    labels = dict(labels or {})
    points = _views([before, *history, after], [name], labels)
    family = resolve(points[-1], name, labels)
    if family.type not in ("histogram", "gaugehistogram"):
        raise MetricsAssertionError(f"{name} is a {family.type}, not a histogram")
    states = [_histogram_states(point, name, labels) for point in points]
    counts: dict[Labels, float] = {}
    total = 0.0
    buckets: dict[float, float] = {}
    for series in {key for state in states for key in state}:
        previous = states[0].get(series, (0.0, 0.0, {}))  # the baseline
        counts[series] = 0.0
        for state in states[1:]:
            now = state.get(series)
            if now is None:  # vanished: a restart that has not recreated the series yet
                previous = (0.0, 0.0, {})
                continue
            restarted = now[0] < previous[0] or any(
                value < previous[2].get(bound, 0.0) for bound, value in now[2].items()
            )
            base = (0.0, 0.0, {}) if restarted else previous
            counts[series] = counts.get(series, 0.0) + now[0] - base[0]
            total += now[1] - base[1]
            for bound, value in now[2].items():
                buckets[bound] = buckets.get(bound, 0.0) + value - base[2].get(bound, 0.0)
            previous = now
    count = _one_or_sum(
        counts,
        aggregate=aggregate,
        what="histogram delta",
        after=points[-1],
        sample=f"{name}_count",
        labels=labels,
    )
    return HistogramDelta(count=count, sum=total, buckets=dict(sorted(buckets.items())))


def assert_histogram(
    before: Snapshot,
    after: Snapshot,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    count: float | None = None,
    at_most: float | None = None,
    aggregate: bool = False,
    history: Sequence[Snapshot] = (),
) -> HistogramDelta:
    """``count`` new observations, and/or every new observation at most ``at_most``.

    ``at_most`` is checked against the largest bucket bound not above it, so the
    assertion can fail for a value between that bound and ``at_most`` but never
    passes for a value above ``at_most``.
    """
    __tracebackhide__ = True
    labels = dict(labels or {})
    got = histogram_delta(before, after, name, labels, aggregate=aggregate, history=history)
    if count is not None and not math.isclose(got.count, count, abs_tol=1e-9):
        _fail(
            f"expected {count:g} new observations in {name}{labels or ''}, got {got.count:g}",
            after,
            f"{name}_count",
            labels,
            before,
        )
    if at_most is not None:
        bounds = [b for b in got.buckets if b <= at_most]
        if not bounds:
            raise MetricsAssertionError(
                f"{name}: no bucket bound is <= {at_most:g} (bounds: "
                f"{', '.join(f'{b:g}' for b in got.buckets)}); pick at_most from the bounds"
            )
        bound = max(bounds)
        within = got.buckets[bound]
        if within < got.count:
            spread = ", ".join(f"le={b:g}: +{v:g}" for b, v in got.buckets.items())
            raise MetricsAssertionError(
                f"expected every new observation of {name}{labels or ''} to be <= {at_most:g} "
                f"(bucket le={bound:g}), but {got.count - within:g} of {got.count:g} were "
                f"larger; new observations per bucket: {spread}"
            )
    return got


def gauge_value(
    after: Snapshot,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    aggregate: bool = False,
) -> float | None:
    """The matching gauge's value, or None when no series matches."""
    __tracebackhide__ = True
    labels = dict(labels or {})
    after = after.view([name], labels)
    resolve(after, name, labels)
    matched = select(after, name, labels)
    if not matched:
        return None
    return _one_or_sum(
        matched, aggregate=aggregate, what="gauge value", after=after, sample=name, labels=labels
    )


def assert_gauge(
    after: Snapshot,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    value: float,
    tolerance: float = 0.0,
    aggregate: bool = False,
) -> None:
    __tracebackhide__ = True
    labels = dict(labels or {})
    got = gauge_value(after, name, labels, aggregate=aggregate)
    if got is None:
        _fail(f"no series of {name} matches {labels}", after, name, labels)
    elif abs(got - value) > tolerance:
        _fail(f"expected {name}{labels or ''} == {value:g}, it is {got:g}", after, name, labels)
