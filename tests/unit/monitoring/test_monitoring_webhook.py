"""Parsing Alertmanager's webhook body: gaps filled, garbage refused with WebhookError."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.monitoring.alerts_listener import Notification, WebhookError, parse_webhook


def test_parse_webhook_fills_gaps() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    (only,) = parse_webhook(
        {"status": "firing", "alerts": [{"labels": {"alertname": "X"}}]}, received_at=when
    )
    assert only.fingerprint  # derived from the labels when Alertmanager sends none
    assert only.line() == "2026-01-01T00:00:00Z FIRING            X service=- severity=-"
    described = Notification(when, "firing", {}, {"description": "d"}, "", "", "f", "r")
    assert described.summary == "d"
    assert described.alertname == "?"


@given(
    st.recursive(
        st.none() | st.booleans() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=5), c),
        max_leaves=10,
    )
)
def test_parse_webhook_rejects_garbage_cleanly(payload: Any) -> None:
    with contextlib.suppress(WebhookError):
        parse_webhook(payload)
