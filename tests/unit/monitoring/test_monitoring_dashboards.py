"""Grafana: dashboards load as bare models with current panel types and provisioned
datasources; Loki queries use only the labels Alloy sets; provisioning files are sound."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.monitoring.dashboards import (
    dashboard_problems,
    expand_variables,
    iter_panels,
    load_dashboard,
    panel_queries,
    provisioned_datasources,
)
from tests.support.monitoring import DOCKER, load_yaml

GRAFANA = DOCKER / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
# The labels config.alloy puts on log streams; everything else stays in the line.
LOKI_LABELS = {"service", "level"}


@pytest.fixture(scope="module")
def datasources() -> dict[str, str]:
    return provisioned_datasources(DATASOURCES_FILE)


def test_the_five_dashboards_exist() -> None:
    titles = {load_dashboard(p)["title"].split("— ")[-1] for p in DASHBOARDS}
    # The generator adds the error-budget dashboard once slo:* recording rules exist.
    titles.discard("SLOs & error budgets")
    assert titles == {
        "system overview",
        "gateway & LLM backends",
        "RBAC & approvals",
        "MCP tools",
        "RAG",
    }
    uids = [load_dashboard(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_is_a_valid_bare_model(path: Path, datasources: dict[str, str]) -> None:
    assert dashboard_problems(load_dashboard(path), datasources) == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_loki_queries_select_only_alloy_labels(path: Path) -> None:
    for query in panel_queries(load_dashboard(path)):
        if query.datasource_type != "loki":
            continue
        selector = re.match(r"\s*\{([^}]*)\}", query.expr)
        assert selector, f"{query.where}: no stream selector"
        labels = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", selector[1]))
        assert labels, f"{query.where}: a stream selector needs a label"
        assert labels <= LOKI_LABELS, f"{query.where}: {labels - LOKI_LABELS}"


def test_alloy_keeps_only_service_and_level_as_labels() -> None:
    config = (DOCKER / "alloy" / "config.alloy").read_text()
    keep = re.search(r"stage\.label_keep\s*\{\s*values\s*=\s*\[([^\]]*)\]", config)
    assert keep, "config.alloy must drop every label but service and level"
    assert set(re.findall(r'"(\w+)"', keep[1])) == LOKI_LABELS
    assert "request_id" not in re.findall(r"values\s*=\s*\{([^}]*)\}", config)[0]


def test_datasources_and_dashboard_provider() -> None:
    data = load_yaml(DATASOURCES_FILE)
    assert {(d["uid"], d["type"]) for d in data["datasources"]} == {
        ("prometheus", "prometheus"),
        ("loki", "loki"),
    }
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    assert provider[0]["type"] == "file"
    compose = load_yaml(DOCKER / "compose.monitoring.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider[0]['options']['path']}:ro" in mounts


# --- the checks can fail ---------------------------------------------------------------------


def _overview() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "overview.json").read_text())


def _problems(model: dict[str, Any], datasources: dict[str, str], tmp_path: Path) -> list[str]:
    # Through a file, as provisioning reads it.
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps(model))
    return dashboard_problems(load_dashboard(path), datasources)


def test_the_http_api_wrapper_is_rejected(datasources: dict[str, str], tmp_path: Path) -> None:
    wrapped = {"dashboard": _overview(), "overwrite": True}
    assert "wrapped" in _problems(wrapped, datasources, tmp_path)[0]


@pytest.mark.parametrize("kind", ["graph", "singlestat", "piechart"])
def test_a_deprecated_or_unknown_panel_type_is_rejected(
    kind: str, datasources: dict[str, str], tmp_path: Path
) -> None:
    model = _overview()
    model["panels"][2]["type"] = kind
    assert any(repr(kind) in p for p in _problems(model, datasources, tmp_path))


@pytest.mark.parametrize(
    ("datasource", "complaint"),
    [
        ({"type": "prometheus", "uid": "prom"}, "not provisioned"),
        ({"type": "loki", "uid": "prometheus"}, "is prometheus, not loki"),
        ("Prometheus", "by name"),
        ({"type": "prometheus"}, "without uid"),
    ],
)
def test_a_bad_datasource_reference_is_rejected(
    datasource: Any, complaint: str, datasources: dict[str, str], tmp_path: Path
) -> None:
    model = _overview()
    model["panels"][2]["targets"][0]["datasource"] = datasource
    assert any(complaint in p for p in _problems(model, datasources, tmp_path))


def test_missing_keys_ids_and_export_form_are_rejected(
    datasources: dict[str, str], tmp_path: Path
) -> None:
    model = _overview()
    del model["schemaVersion"]
    model["id"] = 7
    model["__inputs"] = []
    first, second = model["panels"][1], model["panels"][2]
    second["id"] = first["id"]
    del second["gridPos"]
    del second["datasource"]
    del second["targets"][0]["datasource"]
    problems = "\n".join(_problems(model, datasources, tmp_path))
    for complaint in ("'schemaVersion'", "numeric 'id'", "__inputs", "duplicate id", "no gridPos"):
        assert complaint in problems
    assert "no datasource" in problems


def test_variables_need_provisioned_datasources(datasources: dict[str, str]) -> None:
    model = _overview()
    model["templating"]["list"] = [
        {"name": "service", "type": "query", "datasource": {"type": "prometheus", "uid": "x"}}
    ]
    assert any("variable 'service'" in p for p in dashboard_problems(model, datasources))


def test_unreadable_files_say_so(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(ValueError, match="not readable JSON"):
        load_dashboard(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="JSON object"):
        load_dashboard(path)


def test_rows_panels_and_variables() -> None:
    model = {
        "title": "t",
        "panels": [
            {"id": 1, "type": "row", "panels": [{"id": 2, "type": "stat", "title": "inner"}]},
        ],
    }
    assert [p["id"] for p in iter_panels(model)] == [1, 2]
    assert panel_queries(model) == []
    expr = 'rate(x{service=~"$service", job="${job}"}[$__rate_interval])'
    assert expand_variables(expr) == 'rate(x{service=~".*", job=".*"}[1m])'
    assert expand_variables(expr, {"service": "rag", "$__rate_interval": "5m"}) == (
        'rate(x{service=~"rag", job=".*"}[5m])'
    )
