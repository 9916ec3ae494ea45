"""audit_query's parsing: any query-string value is accepted or refused with an
AuditQueryError naming its parameter (a 400), never another exception (a 500)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.security.audit_query import (
    MAX_LIMIT,
    AuditQueryError,
    Cursor,
    parse_filter,
    parse_limit,
)


@given(
    st.dictionaries(
        st.sampled_from(["user", "action", "outcome", "since", "until"]),
        st.text(max_size=30),
    )
)
def test_any_filter_values_parse_or_name_their_parameter(values: dict[str, str]) -> None:
    problem = None
    try:
        parse_filter(**values)
    except AuditQueryError as exc:
        problem = exc
    assert problem is None or problem.parameter in values


@given(st.text(max_size=40))
def test_any_cursor_text_decodes_or_names_the_cursor(text: str) -> None:
    try:
        cursor = Cursor.decode(text, "desc")
    except AuditQueryError as exc:
        problem: AuditQueryError | None = exc
    else:
        problem = None
        assert cursor.after_id >= 0
    assert problem is None or problem.parameter == "cursor"


@given(st.sampled_from(["asc", "desc"]), st.integers(min_value=0, max_value=2**62))
def test_a_cursor_round_trips(order: str, after_id: int) -> None:
    assert Cursor.decode(Cursor(order, after_id).encode(), order) == Cursor(order, after_id)


def test_the_limit_is_probed_on_both_sides_of_its_bounds() -> None:
    assert parse_limit("1") == 1
    assert parse_limit(str(MAX_LIMIT)) == MAX_LIMIT
    for bad in ("0", str(MAX_LIMIT + 1), "1.5", ""):
        with pytest.raises(AuditQueryError) as caught:
            parse_limit(bad)
        assert caught.value.parameter == "limit"


def test_lone_surrogates_from_a_command_line_are_refused() -> None:
    with pytest.raises(AuditQueryError, match="UTF-8"):
        parse_filter(user="al\udcffice")


def test_a_cursor_past_sqlite_s_integers_is_refused() -> None:
    with pytest.raises(AuditQueryError, match="cursor"):
        Cursor.decode(Cursor("desc", 2**63).encode(), "desc")
    assert Cursor.decode(Cursor("desc", 2**63 - 1).encode(), "desc").after_id == 2**63 - 1
