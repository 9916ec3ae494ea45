"""Every PromQL selector in the rules and dashboards names a declared metric and label.

The catalog is tests/metrics_contract.yaml (the metrics plugin's contract), Prometheus' own
series (up, ALERTS) and the recording rules' outputs.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.monitoring.catalog import Catalog, check_expression
from services.monitoring.dashboards import load_dashboard, panel_queries
from services.monitoring.promql import PromQLSyntaxError, analyze, parse_matchers
from tests.support.monitoring import DOCKER, PROMETHEUS_DIR, load_yaml

DASHBOARDS = sorted((DOCKER / "grafana" / "dashboards").glob("*.json"))


def rule_expressions(rules_dir: Path = PROMETHEUS_DIR / "rules") -> list[tuple[str, str]]:
    return [
        (f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"])
        for path in sorted(rules_dir.glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def dashboard_expressions(paths: list[Path] = DASHBOARDS) -> list[tuple[str, str]]:
    return [
        (query.where, query.expr)
        for path in paths
        for query in panel_queries(load_dashboard(path))
        if query.datasource_type == "prometheus"
    ]


def test_rules_use_only_declared_metrics_and_labels(catalog: Catalog) -> None:
    problems = [p for where, e in rule_expressions() for p in check_expression(catalog, e, where)]
    assert problems == [], "\n".join(map(str, problems))


def test_dashboards_use_only_declared_metrics_and_labels(catalog: Catalog) -> None:
    queries = dashboard_expressions()
    assert len(queries) > 30
    problems = [p for where, e in queries for p in check_expression(catalog, e, where)]
    assert problems == [], "\n".join(map(str, problems))


def test_every_contract_metric_is_on_a_dashboard(catalog: Catalog, contract) -> None:
    used: set[str] = set()
    for _, expr in dashboard_expressions() + rule_expressions():
        for metric in analyze(expr).metrics:
            used.add(metric.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count"))
    assert set(contract.metrics) - used == set()


# --- the check can fail ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ('sum(rate(http_requests_total{status_code=~"5.."}[5m]))', "no label 'status_code'"),
        ("rate(vector_search_latency_seconds_count[5m])", "not declared"),
        ("sum by (status_code) (rate(http_requests_total[5m]))", "status_code"),
        ('rbac_permission_checks_total{result="deny"}', "can never match"),
        ('approval_requests_total{status=~"approve|reject"}', "matches none"),
        ('{job="gateway"}', "without a metric name"),
        ("sum(rate(http_requests_total{status=5}[5m]))", "cannot read label matchers"),
    ],
)
def test_a_broken_expression_is_reported(catalog: Catalog, expr: str, complaint: str) -> None:
    problems = check_expression(catalog, expr, "mutated")
    assert any(complaint in str(p) for p in problems), problems


def test_a_mutated_alert_copy_is_reported(catalog: Catalog, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for source in (PROMETHEUS_DIR / "rules").glob("*.yml"):
        text = source.read_text()
        (rules / source.name).write_text(text.replace('{result="denied"}', '{outcome="denied"}'))
    problems = [
        p for where, e in rule_expressions(rules) for p in check_expression(catalog, e, where)
    ]
    assert any("no label 'outcome'" in str(p) for p in problems)


def test_a_mutated_dashboard_copy_is_reported(catalog: Catalog, tmp_path: Path) -> None:
    model = json.loads((DOCKER / "grafana/dashboards/rag.json").read_text())
    model["panels"][0]["targets"][0]["expr"] = "rate(rag_requests_total[5m])"
    path = tmp_path / "rag.json"
    path.write_text(json.dumps(model))
    problems = [
        p for w, e in dashboard_expressions([path]) for p in check_expression(catalog, e, w)
    ]
    assert any("rag_requests_total is not declared" in str(p) for p in problems)


# --- the selector parser ----------------------------------------------------------------------


def test_analyze_finds_selectors_grouping_and_functions() -> None:
    result = analyze(
        'sum by (route) (rate(http_requests_total{service=~"$service", route!="/x"}'
        "[$__rate_interval])) / on (service) group_left up offset 5m"
        ' and {__name__="audit_writes_total"} # a comment'
    )
    assert result.metrics == {"http_requests_total", "up", "audit_writes_total"}
    assert result.grouping_labels == {"route", "service"}
    assert {"sum", "rate"} <= result.functions
    assert result.selectors[0].labels() == {"service", "route"}


def test_matchers_keep_escapes_and_commas() -> None:
    matchers = parse_matchers(r'a="x,y", b=~"a\"b", c!=`raw\n`,')
    assert [(m.label, m.op, m.value) for m in matchers] == [
        ("a", "=", "x,y"),
        ("b", "=~", 'a"b'),
        ("c", "!=", "raw\\n"),
    ]


@pytest.mark.parametrize("expr", ["up{job=", 'up{job="x"', "sum by (1) (up)", "up ? 1"])
def test_malformed_expressions_raise(expr: str) -> None:
    with pytest.raises(PromQLSyntaxError):
        analyze(expr)


@given(st.text(max_size=80))
def test_analyze_never_crashes_on_hostile_input(expr: str) -> None:
    with contextlib.suppress(PromQLSyntaxError):
        analyze(expr)
