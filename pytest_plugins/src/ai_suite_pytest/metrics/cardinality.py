"""Cardinality guard: random unknown paths must not create new series."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from ai_suite_pytest.metrics.exposition import Snapshot, format_series


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


def new_series(before: Snapshot, after: Snapshot) -> list[str]:
    old = before.samples
    return sorted(format_series(n, lb) for (n, lb) in after.samples if (n, lb) not in old)


def assert_cardinality_stable(
    scrape: Callable[[], Snapshot],
    request: Callable[[str], object],
    *,
    n: int = 50,
    warmup: int = 1,
) -> int:
    """Send ``warmup`` then ``n`` requests to random unknown paths; the series count must not grow.

    The warm-up requests may create the one shared "unmatched route" series; after
    that, every further unknown path must land in the same series. Returns the
    series count.
    """
    __tracebackhide__ = True
    for path in random_paths(warmup):
        request(path)
    before = scrape()
    paths = random_paths(n)
    for path in paths:
        request(path)
    after = scrape()
    added = new_series(before, after)
    if added:
        listing = "\n".join(f"  {line}" for line in added[:20])
        more = f"\n  ... and {len(added) - 20} more" if len(added) > 20 else ""
        raise CardinalityError(
            f"{n} requests to random unknown paths (e.g. {paths[0]}) created "
            f"{len(added)} new series; label unknown paths with one shared value:\n{listing}{more}"
        )
    return after.series_count()
