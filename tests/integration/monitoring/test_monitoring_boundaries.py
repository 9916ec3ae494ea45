"""Every alert's threshold and `for` pinned by behaviour, and proof that it bites.

The boundary cases are generated from docker/prometheus/boundaries.yml
(services/monitoring/boundaries.py) and run by promtool. The mutation tests apply each change
issue 14 listed to a copy of the configuration and require the checks to fail naming the alert
(or route) and the case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.monitoring import (
    MonitoringSources,
    boundary_failures,
    dump_yaml,
    load_yaml,
    monitoring_problems,
)


def test_every_boundary_case_holds(promtool: str, tmp_path: Path) -> None:
    assert boundary_failures(promtool, MonitoringSources(), tmp_path) == []


def _replace_once(path: Path, pattern: str, new: str) -> None:
    text = path.read_text()
    changed, count = re.subn(pattern, new, text, count=1, flags=re.S)
    assert count == 1, f"{pattern!r} not found in {path}"
    path.write_text(changed)


def _approval_backlog_threshold(s: MonitoringSources) -> None:
    _replace_once(
        s.rules_dir / "alerts.yml", r"\(approvals_pending\) > 10", "(approvals_pending) > 11"
    )


def _auth_failure_threshold(s: MonitoringSources) -> None:
    _replace_once(s.rules_dir / "alerts.yml", r"\* 300 >= 30", "* 300 >= 50")


def _approval_backlog_for(s: MonitoringSources) -> None:
    _replace_once(s.rules_dir / "alerts.yml", r"(alert: ApprovalBacklog.*?)for: 15m", r"\1for: 10m")


def _recording_window(s: MonitoringSources) -> None:
    _replace_once(
        s.rules_dir / "recording.yml",
        r"rate\(auth_failures_total\[5m\]\)",
        "rate(auth_failures_total[1m])",
    )


def _critical_group_wait(s: MonitoringSources) -> None:
    _replace_once(s.alertmanager, r"(receiver: critical.*?)group_wait: 5s", r"\1group_wait: 5m")


def _delete_alert_with_its_tests(s: MonitoringSources) -> None:
    alerts = load_yaml(s.rules_dir / "alerts.yml")
    for group in alerts["groups"]:
        group["rules"] = [r for r in group["rules"] if r.get("alert") != "ApprovalBacklog"]
    (s.rules_dir / "alerts.yml").write_text(dump_yaml(alerts))
    spec = load_yaml(s.boundaries)
    del spec["alerts"]["ApprovalBacklog"]
    s.boundaries.write_text(dump_yaml(spec))


MUTATIONS: list[tuple[str, Callable[[MonitoringSources], None], str]] = [
    (
        "ApprovalBacklog > 10 -> > 11",
        _approval_backlog_threshold,
        "boundary ApprovalBacklog: just above the threshold (> 10) fires after onset + for",
    ),
    (
        "AuthFailureSpike >= 30 -> >= 50",
        _auth_failure_threshold,
        "boundary AuthFailureSpike: just above the threshold (>= 30) fires after onset + for",
    ),
    (
        "ApprovalBacklog for 15m -> 10m",
        _approval_backlog_for,
        "boundary ApprovalBacklog: for minus one interval is still pending",
    ),
    (
        "recording rule [5m] -> [1m]",
        _recording_window,
        "boundary AuthFailureSpike: for minus one interval is still pending",
    ),
    (
        "critical group_wait 5s -> 5m",
        _critical_group_wait,
        "route critical: group_wait is 5m, must be 5s",
    ),
    (
        "ApprovalBacklog deleted with its tests",
        _delete_alert_with_its_tests,
        "required alert ApprovalBacklog is missing from the rules",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [(m, e) for _, m, e in MUTATIONS], ids=[i for i, _, _ in MUTATIONS]
)
def test_each_listed_mutation_is_caught_by_name(
    promtool: str, tmp_path: Path, mutate: Callable[[MonitoringSources], None], expected: str
) -> None:
    sources = MonitoringSources().copy_to(tmp_path / "copy")
    mutate(sources)
    problems = monitoring_problems(promtool, sources, tmp_path)
    assert any(expected in problem for problem in problems), problems
