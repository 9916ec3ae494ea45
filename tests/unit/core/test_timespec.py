"""parse_instant: durations ago and ISO-8601 times; anything else is a ValueError saying
what is expected, never another exception."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.timespec import EXPECTED, iso, parse_instant

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW - timedelta(seconds=30)),
        ("10m", NOW - timedelta(minutes=10)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("2d", NOW - timedelta(days=2)),
        ("1w", NOW - timedelta(days=7)),
        ("2026-12-01T09:00:00Z", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-12-01T09:00:00", datetime(2026, 12, 1, 9, tzinfo=UTC)),  # no zone: UTC
        ("2026-12-01T18:00:00+09:00", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_accepted_forms(text: str, expected: datetime) -> None:
    assert parse_instant(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "10", "5y", "-1h", "", "10 m", "9999999999999w"])
def test_refused_forms_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not|before year 1"):
        parse_instant(text, now=NOW)


def test_iso_is_the_stored_form() -> None:
    assert iso(datetime(2026, 12, 1, 18, tzinfo=UTC)) == "2026-12-01T18:00:00.000000+00:00"
    assert "ISO-8601" in EXPECTED


@given(st.text(max_size=40))
def test_any_text_parses_or_is_a_value_error(text: str) -> None:
    try:
        instant = parse_instant(text, now=NOW)
    except ValueError:
        return
    assert instant.tzinfo is not None
    assert iso(instant)  # comparable with the stored timestamps


@given(st.integers(min_value=0, max_value=50_000), st.sampled_from("smhdw"))
def test_a_duration_ago_is_that_far_back(amount: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit] * amount
    assert parse_instant(f"{amount}{unit}", now=NOW) == NOW - timedelta(seconds=seconds)
