"""Alertmanager routing in Python: a ServiceDown silences the other alerts of its service only,
every receiver delivers somewhere, and matcher semantics follow Alertmanager's.

amtool's own checks of the same file: tests/integration/monitoring/test_monitoring_amtool.py.
"""

from __future__ import annotations

import pytest

from services.monitoring.routing import (
    AlertMatcher,
    InhibitRule,
    is_inhibited,
    receivers_without_channel,
    route_receivers,
)
from tests.support.monitoring import ALERTMANAGER_FILE, load_yaml

# --- inhibition -----------------------------------------------------------------------------

GATEWAY_DOWN = {"alertname": "ServiceDown", "service": "gateway", "severity": "critical"}
INHIBITION = [
    # target, firing alerts, inhibited?
    (
        {"alertname": "High5xxRatio", "service": "gateway", "severity": "critical"},
        [GATEWAY_DOWN],
        True,
    ),
    (
        {"alertname": "HighLatencyP95", "service": "gateway", "severity": "warning"},
        [GATEWAY_DOWN],
        True,
    ),
    (
        {"alertname": "High5xxRatio", "service": "rag", "severity": "critical"},
        [GATEWAY_DOWN],
        False,
    ),
    ({"alertname": "ServiceDown", "service": "rag", "severity": "critical"}, [GATEWAY_DOWN], False),
    (GATEWAY_DOWN, [GATEWAY_DOWN], False),
    ({"alertname": "High5xxRatio", "service": "gateway", "severity": "critical"}, [], False),
]


@pytest.mark.parametrize(
    ("target", "firing", "inhibited"),
    INHIBITION,
    ids=["5xx-same-service", "latency-same-service", "other-service", "other-down", "self", "none"],
)
def test_inhibition(target: dict[str, str], firing: list[dict[str, str]], inhibited: bool) -> None:
    assert is_inhibited(load_yaml(ALERTMANAGER_FILE), target, firing) is inhibited


def test_every_receiver_delivers_somewhere() -> None:
    config = load_yaml(ALERTMANAGER_FILE)
    assert receivers_without_channel(config) == []
    assert route_receivers(config["route"]) == {r["name"] for r in config["receivers"]}


# --- the checks can fail --------------------------------------------------------------------


def test_a_receiver_without_channel_is_reported() -> None:
    config = load_yaml(ALERTMANAGER_FILE)
    config["receivers"][1].pop("webhook_configs")
    assert receivers_without_channel(config) == [config["receivers"][1]["name"]]


def test_inhibition_without_equal_would_silence_other_services() -> None:
    config = load_yaml(ALERTMANAGER_FILE)
    config["inhibit_rules"][0].pop("equal")
    rag_errors = {"alertname": "High5xxRatio", "service": "rag", "severity": "critical"}
    assert is_inhibited(config, rag_errors, [GATEWAY_DOWN])


# --- matcher semantics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity!="critical"', {}, True),
        ('service=~"gate.*"', {"service": "gateway"}, True),
        ('service=~"gate"', {"service": "gateway"}, False),  # anchored
        ('service!~"rag|mcp"', {"service": "gateway"}, True),
        ("severity=critical", {"severity": "critical"}, True),  # unquoted value
    ],
)
def test_matchers(matcher: str, labels: dict[str, str], expected: bool) -> None:
    assert AlertMatcher.parse(matcher).matches(labels) is expected


def test_bad_matcher_and_legacy_inhibit_fields_are_errors() -> None:
    with pytest.raises(ValueError, match="not a matcher"):
        AlertMatcher.parse("no operator")
    with pytest.raises(ValueError, match="deprecated"):
        InhibitRule.from_config({"source_match": {"alertname": "X"}})
