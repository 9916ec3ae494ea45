"""Points in time as people type them on a command line or in a query string.

``--since 10m`` (ten minutes ago), ``since=2026-12-01T09:00:00Z`` (an ISO-8601 instant;
without a zone it is UTC, the platform's only zone). One grammar for ``ai-suite logs``,
``ai-suite audit`` and ``GET /v1/audit``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGO = re.compile(r"(?:\d+[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
EXPECTED = (
    "a duration ago such as 30s, 10m, 1h30m, 2d, 1w, or an ISO-8601 time such as"
    " 2026-12-01T09:00:00Z"
)


def parse_instant(text: str, *, now: datetime | None = None) -> datetime:
    """An aware UTC datetime for ``text``; ValueError saying what is expected otherwise."""
    value = text.strip()
    if _AGO.fullmatch(value):
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value))
        try:
            return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"{text!r} reaches before year 1") from None
    try:
        instant = datetime.fromisoformat(value)
        if instant.tzinfo is None:
            return instant.replace(tzinfo=UTC)
        return instant.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 moved west of UTC
        raise ValueError(f"{text!r} is not {EXPECTED}") from None


def iso(instant: datetime) -> str:
    """The stored form of timestamps (``migrations.utcnow``): comparable as text."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds")
