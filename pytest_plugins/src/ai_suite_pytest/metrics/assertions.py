"""Assertions over two snapshots: counter deltas, histograms, gauges.

Every failure says what was expected, what was found, and which series come
closest (with their values), so a typo in a name or label is obvious.
A name that the exposition does not know always fails, even when the expected
change is zero (Go's testutil passes silently there, client_golang#1351).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
    near = nearest(after, name, labels, before=before)
    listing = "\n".join(f"  {line}" for line in near) or "  (the exposition has no series)"
    raise MetricsAssertionError(f"{message}\nnearest series:\n{listing}")


def resolve(snapshot: Snapshot, name: str, labels: Mapping[str, str]) -> Family:
    """The family called ``name``; unknown names and unknown label names fail loudly."""
    __tracebackhide__ = True
    family = snapshot.family_of(name)
    if family is None:
        close = nearest_names(snapshot, name)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise MetricsAssertionError(
            f"metric {name!r} is not in the exposition ({len(snapshot.families)} families)"
            f"{hint}"
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


def counter_delta(
    before: Snapshot,
    after: Snapshot,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    aggregate: bool = False,
) -> float:
    """How much the matching counter grew; a series absent before counts as 0."""
    __tracebackhide__ = True
    labels = dict(labels or {})
    family = resolve(after, name, labels)
    sample = _sample_name(family, name, "_total")
    now = select(after, sample, labels)
    then = select(before, sample, labels)
    keys = set(now) | set(then)
    deltas = {k: now.get(k, 0.0) - then.get(k, 0.0) for k in keys}
    return _one_or_sum(
        deltas, aggregate=aggregate, what="counter delta", after=after, sample=sample, labels=labels
    )


def assert_counter_delta(
    before: Snapshot,
    after: Snapshot,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    delta: float,
    aggregate: bool = False,
) -> None:
    __tracebackhide__ = True
    labels = dict(labels or {})
    got = counter_delta(before, after, name, labels, aggregate=aggregate)
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


def histogram_delta(
    before: Snapshot,
    after: Snapshot,
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    aggregate: bool = False,
) -> HistogramDelta:
    __tracebackhide__ = True
    labels = dict(labels or {})
    family = resolve(after, name, labels)
    if family.type not in ("histogram", "gaugehistogram"):
        raise MetricsAssertionError(f"{name} is a {family.type}, not a histogram")
    count = counter_delta(before, after, f"{name}_count", labels, aggregate=aggregate)
    total = counter_delta(before, after, f"{name}_sum", labels, aggregate=True)
    buckets: dict[float, float] = {}
    now = select(after, f"{name}_bucket", labels)
    then = select(before, f"{name}_bucket", labels)
    for key in set(now) | set(then):
        bound = float(dict(key)["le"])
        buckets[bound] = buckets.get(bound, 0.0) + now.get(key, 0.0) - then.get(key, 0.0)
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
) -> HistogramDelta:
    """``count`` new observations, and/or every new observation at most ``at_most``.

    ``at_most`` is checked against the largest bucket bound not above it, so the
    assertion can fail for a value between that bound and ``at_most`` but never
    passes for a value above ``at_most``.
    """
    __tracebackhide__ = True
    labels = dict(labels or {})
    got = histogram_delta(before, after, name, labels, aggregate=aggregate)
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
