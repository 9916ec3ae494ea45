"""The error-budget dashboard appears when SLO recording rules (slo:*) exist, uses their
assumed names, and refuses rules named otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.monitoring.dashboards import (
    dashboard_problems,
    panel_queries,
    provisioned_datasources,
)
from services.monitoring.dashgen.links import DEFAULT_RUNBOOK_BASE_URL
from services.monitoring.dashgen.render import boards, build, render_all
from services.monitoring.dashgen.slo import RULES_DIR, UID, WINDOWS, error_ratio, slo_records
from tests.support.monitoring import DOCKER

DATASOURCES = provisioned_datasources(
    DOCKER / "grafana" / "provisioning" / "datasources" / "datasources.yml"
)


def _rules(tmp_path: Path, names: list[str]) -> Path:
    rules = [{"record": name, "expr": "vector(0)"} for name in names]
    (tmp_path / "slo.yml").write_text(yaml.safe_dump({"groups": [{"name": "slo", "rules": rules}]}))
    # A file with other rules alongside, as docker/prometheus/rules has.
    (tmp_path / "recording.yml").write_text((RULES_DIR / "recording.yml").read_text())
    return tmp_path


ALL = ["slo:objective:ratio", "slo:error_budget_remaining:ratio"] + [
    error_ratio(w) for w in WINDOWS
]


def test_no_slo_rules_no_dashboard(tmp_path: Path) -> None:
    rules = _rules(tmp_path, [])
    assert slo_records(rules) == set()
    assert "slo" not in boards(DEFAULT_RUNBOOK_BASE_URL, rules)
    assert "slo.json" not in render_all(DEFAULT_RUNBOOK_BASE_URL, rules)


def test_slo_rules_give_the_error_budget_dashboard(tmp_path: Path) -> None:
    rules = _rules(tmp_path, ALL)
    model = build("slo", DEFAULT_RUNBOOK_BASE_URL, rules)
    assert model["uid"] == UID
    assert dashboard_problems(model, DATASOURCES) == []
    exprs = [q.expr for q in panel_queries(model)]
    # One burn-rate query per window, each dividing by the budget the objective leaves.
    burns = [e for e in exprs if "group_left" in e]
    assert len(burns) == len(WINDOWS)
    assert all("(1 - slo:objective:ratio{" in e for e in burns)
    assert any(e.startswith("slo:error_budget_remaining:ratio{") for e in exprs)
    assert all('service=~"$service", slo=~"$slo"' in e for e in exprs)
    assert {v["name"] for v in model["templating"]["list"]} == {"service", "slo"}


def test_only_the_windows_that_exist_are_drawn(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        [*ALL[:2], error_ratio("1h"), error_ratio("6h")],
    )
    burns = [
        q
        for q in panel_queries(build("slo", DEFAULT_RUNBOOK_BASE_URL, rules))
        if "group_left" in q.expr
    ]
    assert [q.expr.split("{")[0] for q in burns] == [error_ratio("1h"), error_ratio("6h")]


def test_slo_rules_under_other_names_are_refused(tmp_path: Path) -> None:
    rules = _rules(tmp_path, ["slo:sli_error:ratio_rate5m", "slo:objective:ratio"])
    with pytest.raises(ValueError, match="slo:error_budget_remaining:ratio"):
        boards(DEFAULT_RUNBOOK_BASE_URL, rules)
