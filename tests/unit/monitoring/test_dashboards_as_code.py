"""The committed dashboards are exactly what services/monitoring/dashgen writes; variables,
runbook links and alert panels are what the generator promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.monitoring.dashboards import iter_panels, panel_queries
from services.monitoring.dashgen.__main__ import main
from services.monitoring.dashgen.boards import DASHBOARDS
from services.monitoring.dashgen.links import (
    ALERT_PANELS,
    DEFAULT_RUNBOOK_BASE_URL,
    RUNBOOK_BASE_ENV,
    panel_path,
    runbook_base_url,
)
from services.monitoring.dashgen.render import DASHBOARD_DIR, REGENERATE, build, drift, render_all
from tests.support.monitoring import DOCKER, load_yaml

ALERTS_FILE = DOCKER / "prometheus" / "rules" / "alerts.yml"


def test_committed_dashboards_match_the_generator() -> None:
    # The default base URL: the committed files are generated without the variable set.
    problems = drift(DASHBOARD_DIR, DEFAULT_RUNBOOK_BASE_URL)
    assert not problems, "\n".join(
        f"docker/grafana/dashboards/{p.file}: {p.reason}; run `{REGENERATE}`" for p in problems
    )


def test_a_hand_edit_is_reported_with_the_command_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RUNBOOK_BASE_ENV, raising=False)
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0
    edited = tmp_path / "rag.json"
    edited.write_text(edited.read_text().replace("Query p95 duration", "Query p99 duration"))
    (tmp_path / "stray.json").write_text("{}")
    (tmp_path / "mcp.json").unlink()
    assert main(["--check", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"rag.json: differs from the generator's output; run `{REGENERATE}`" in out
    assert "mcp.json: missing" in out
    assert "stray.json: not produced by the generator" in out


def test_uids_are_the_ones_alerts_link_to() -> None:
    uids = {name: build(name, DEFAULT_RUNBOOK_BASE_URL)["uid"] for name in DASHBOARDS}
    assert uids == {
        "overview": "ai-suite-overview",
        "gateway": "ai-suite-gateway",
        "security": "ai-suite-security",
        "mcp": "ai-suite-mcp",
        "rag": "ai-suite-rag",
    }


@pytest.mark.parametrize(
    ("name", "variables"),
    [
        ("overview", {"service", "instance"}),
        ("gateway", {"instance", "model"}),
        ("security", {"service"}),
        ("mcp", {"instance"}),
        ("rag", {"instance"}),
    ],
)
def test_every_variable_is_used_by_a_query(name: str, variables: set[str]) -> None:
    model = build(name, DEFAULT_RUNBOOK_BASE_URL)
    declared = {v["name"]: v for v in model["templating"]["list"]}
    assert set(declared) == variables
    exprs = [q.expr for q in panel_queries(model)]
    for variable, spec in declared.items():
        # "All" is .* so an unfiltered dashboard shows every series, as before variables.
        assert spec["includeAll"]
        assert spec["allValue"] == ".*"
        assert spec["multi"]
        assert any(f'=~"${variable}"' in e for e in exprs), f"{name}: ${variable} unused"


def test_runbook_links_are_absolute_and_follow_the_base_url() -> None:
    base = "https://docs.example.org/suite/"
    texts = render_all(base)
    for text in texts.values():
        model = json.loads(text)
        links = [link["url"] for link in model["links"] if link["type"] == "link"]
        assert f"{base.rstrip('/')}/docs/ops/MONITORING_GUIDE.md" in links
        assert DEFAULT_RUNBOOK_BASE_URL not in text
    assert runbook_base_url({RUNBOOK_BASE_ENV: base}) == base.rstrip("/")
    assert runbook_base_url({}) == DEFAULT_RUNBOOK_BASE_URL
    with pytest.raises(ValueError, match="absolute"):
        runbook_base_url({RUNBOOK_BASE_ENV: "docs/ops"})


def test_every_alert_panel_exists_and_links_to_its_runbook() -> None:
    alerts = {
        rule["alert"]: rule
        for group in load_yaml(ALERTS_FILE)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    boards = {
        build(n, DEFAULT_RUNBOOK_BASE_URL)["uid"]: build(n, DEFAULT_RUNBOOK_BASE_URL)
        for n in DASHBOARDS
    }
    for entry in ALERT_PANELS:
        assert entry.alert in alerts, f"{entry.alert}: no such alert in {ALERTS_FILE.name}"
        panels = {p["id"]: p for p in iter_panels(boards[entry.dashboard_uid])}
        panel = panels[entry.panel_id]
        anchor = alerts[entry.alert]["annotations"]["runbook_url"].split("#")[-1]
        urls = [link["url"] for link in panel.get("links", [])]
        assert f"{DEFAULT_RUNBOOK_BASE_URL}/docs/ops/MONITORING_GUIDE.md#{anchor}" in urls
    assert panel_path("ai-suite-rag", 6) == "/d/ai-suite-rag?viewPanel=6"
