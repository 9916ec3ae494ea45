"""The rules and their tests are complete: every alert is tested firing and silent, every
recording rule is tested, every alert carries severity, annotations and a runbook section.

Running the rule tests themselves needs promtool: tests/integration/monitoring/.
"""

from __future__ import annotations

import functools
import re

import pytest

from tests.support.monitoring import (
    PROMETHEUS_DIR,
    RULE_TESTS_DIR,
    load_yaml,
    rule_groups,
    rule_test_groups,
)

GROUPS = rule_test_groups()
# The dead man's switch: firing is its only state (its absence is the alarm, at the listener).
ALWAYS_FIRING = frozenset({"Watchdog"})


def test_rule_test_groups_are_named_uniquely() -> None:
    ids = [group.id for group in GROUPS]
    assert all(not group.name.startswith("group ") for group in GROUPS), "name every group"
    assert len(ids) == len(set(ids)), "group names must be unique within a file"


@functools.cache
def _alert_tests() -> dict[str, dict[str, int]]:
    """alertname -> how many checks expect it firing / silent, over all rule test files."""
    seen: dict[str, dict[str, int]] = {}
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for group in load_yaml(path).get("tests") or []:
            for case in group.get("alert_rule_test") or []:
                counts = seen.setdefault(case["alertname"], {"fires": 0, "silent": 0})
                counts["fires" if case.get("exp_alerts") else "silent"] += 1
            # Generated tests (tests/slo.yml) query ALERTS{alertname="..."} instead.
            for case in group.get("promql_expr_test") or []:
                for name in re.findall(r'ALERTS\{alertname="(\w+)"', case["expr"]):
                    counts = seen.setdefault(name, {"fires": 0, "silent": 0})
                    counts["fires" if case.get("exp_samples") else "silent"] += 1
    return seen


def _rules(kind: str) -> list[str]:
    return [
        rule[kind]
        for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
        for group in rule_groups(path)
        for rule in group["rules"]
        if kind in rule
    ]


@pytest.mark.parametrize("alertname", _rules("alert"))
def test_every_alert_is_tested_firing_and_silent(alertname: str) -> None:
    counts = _alert_tests().get(alertname, {"fires": 0, "silent": 0})
    assert counts["fires"] >= 1, f"no rule test expects {alertname} to fire"
    if alertname in ALWAYS_FIRING:
        return
    assert counts["silent"] >= 1, f"no rule test expects {alertname} to stay silent"


def test_every_recording_rule_is_tested() -> None:
    tested = set()
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for group in load_yaml(path).get("tests") or []:
            tested |= {case["expr"].split("{")[0] for case in group.get("promql_expr_test") or []}
    assert set(_rules("record")) - tested == set()


def test_every_alert_has_severity_annotations_and_a_runbook() -> None:
    guide = (PROMETHEUS_DIR.parents[1] / "docs/ops/MONITORING_GUIDE.md").read_text()
    anchors = {
        line.lstrip("#").strip().lower() for line in guide.splitlines() if line.startswith("#")
    }
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        for group in rule_groups(path):
            for rule in (r for r in group["rules"] if "alert" in r):
                name = rule["alert"]
                assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
                for key in ("summary", "description", "runbook_url"):
                    assert rule["annotations"].get(key), f"{name} has no {key}"
                url = rule["annotations"]["runbook_url"]
                assert url == f"docs/ops/MONITORING_GUIDE.md#{name.lower()}", name
                assert name.lower() in anchors, f"MONITORING_GUIDE.md has no section {name}"
