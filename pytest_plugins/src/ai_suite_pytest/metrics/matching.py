"""Label-subset matching, and the "nearest series" shown when an assertion fails."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from ai_suite_pytest.metrics.exposition import Labels, Snapshot, format_series

NEAREST_LIMIT = 5


def matches(labels: Labels, subset: Mapping[str, str]) -> bool:
    have = dict(labels)
    return all(have.get(k) == str(v) for k, v in subset.items())


def select(snapshot: Snapshot, sample: str, subset: Mapping[str, str]) -> dict[Labels, float]:
    """Series of ``sample`` whose labels include ``subset`` (``le`` excluded unless asked)."""
    family = snapshot.family_of(sample)
    if family is None:
        return {}
    return {
        labels: value
        for (name, labels), value in family.samples.items()
        if name == sample and matches(labels, subset)
    }


def _score(wanted: str, subset: Mapping[str, str], name: str, labels: Labels) -> float:
    similarity = difflib.SequenceMatcher(None, wanted, name).ratio()
    if not subset:
        return similarity * 2
    have = dict(labels)
    pairs = sum(1 for k, v in subset.items() if have.get(k) == str(v))
    keys = sum(1 for k in subset if k in have)
    return similarity * 2 + (pairs + 0.25 * keys) / len(subset)


def nearest(
    after: Snapshot,
    wanted: str,
    subset: Mapping[str, str],
    *,
    before: Snapshot | None = None,
    limit: int = NEAREST_LIMIT,
) -> list[str]:
    """Lines such as ``http_requests_total{...} = 3 (before: 1)``, most similar first."""
    before_samples = before.samples if before is not None else {}
    ranked = sorted(
        (
            (_score(wanted, subset, name, labels), name, labels, value)
            for (name, labels), value in after.samples.items()
            if not (name.endswith("_bucket") and not wanted.endswith("_bucket"))
        ),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    lines = []
    for _, name, labels, value in ranked[:limit]:
        line = f"{format_series(name, labels)} = {value:g}"
        if before is not None:
            old = before_samples.get((name, labels))
            line += f" (before: {'absent' if old is None else f'{old:g}'})"
        lines.append(line)
    return lines


def nearest_names(snapshot: Snapshot, wanted: str, limit: int = NEAREST_LIMIT) -> list[str]:
    names = sorted(snapshot.families)
    return difflib.get_close_matches(wanted, names, n=limit, cutoff=0.5)
