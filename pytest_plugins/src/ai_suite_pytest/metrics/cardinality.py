"""Cardinality guard: random unknown paths must not create new series."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping

from ai_suite_pytest.metrics.exposition import Labels, Snapshot, changed_views, format_series
from ai_suite_pytest.metrics.matching import matches


class CardinalityError(AssertionError):
    """Requests to unknown paths created new series."""


def random_paths(n: int) -> list[str]:
    """Unknown paths of varied shapes (ids, nested, dotted, encoded)."""
    shapes = (
        "/{t}",
        "/v1/{t}",
        "/v1/{t}/{t}",
        "/{t}.php",
        "/static/{t}/x.js",
        "/%2e%2e/{t}",
        "/v1/models/{t}/extra/{t}",
    )
    return [
        shapes[i % len(shapes)]
        .replace("{t}", secrets.token_hex(4), 1)
        .replace("{t}", secrets.token_hex(3))
        for i in range(n)
    ]


UNTRUSTED = (
    "assert_cardinality_stable() cannot be trusted on {source}: other xdist workers' tests "
    "use it too, and every series they create while this test runs would count as a leak of "
    "this test's. Scope it: pass labels={{...}} that only this test's requests carry (series "
    "that carry one of this call's random paths always count), mark the test "
    "@pytest.mark.stack_exclusive (it then runs while no other test uses the stack), or pass "
    "shared=False to metrics.watch() when the service is this test's own."
)


def _tokens(paths: list[str]) -> set[str]:
    """The random parts of ``paths``: a label value holding one came from these requests."""
    return {part for path in paths for part in re.findall(r"[0-9a-f]{6,}", path)}


def new_series(before: Snapshot, after: Snapshot) -> list[tuple[str, Labels]]:
    """Series in ``after`` that ``before`` did not have (only changed families are parsed)."""
    before, after = changed_views(before, after)
    old = before.samples
    return sorted(key for key in after.samples if key not in old)


def assert_cardinality_stable(
    scrape: Callable[[], Snapshot],
    request: Callable[[str], object],
    *,
    n: int = 50,
    warmup: int = 1,
    labels: Mapping[str, str] | None = None,
    shared: bool = False,
    source: str = "this exposition",
) -> int:
    """Send ``warmup`` then ``n`` requests to random unknown paths; no series may be added.

    The warm-up requests may create the one shared "unmatched route" series; after
    that, every further unknown path must land in the same series. A new series
    whose label values hold one of the random paths is always a leak. Other new
    series count when they match ``labels`` (every one when ``labels`` is None).
    On a ``shared`` exposition (other workers' tests use it) an unscoped check is
    refused with the reason instead of failing on their series. Returns the number
    of series in the last scrape.
    """
    __tracebackhide__ = True
    if shared and labels is None:
        raise CardinalityError(UNTRUSTED.format(source=source))
    for path in random_paths(warmup):
        request(path)
    before = scrape()
    paths = random_paths(n)
    for path in paths:
        request(path)
    after = scrape()
    tokens = _tokens(paths)
    added = [
        format_series(name, series)
        for name, series in new_series(before, after)
        if labels is None
        or matches(series, labels)
        or any(token in value for _, value in series for token in tokens)
    ]
    if added:
        listing = "\n".join(f"  {line}" for line in added[:20])
        more = f"\n  ... and {len(added) - 20} more" if len(added) > 20 else ""
        scope = f" matching {dict(labels)} or holding a path" if labels is not None else ""
        raise CardinalityError(
            f"{n} requests to random unknown paths (e.g. {paths[0]}) created "
            f"{len(added)} new series{scope}; label unknown paths with one shared value:"
            f"\n{listing}{more}"
        )
    return after.full().series_count()
