"""Alerts carry absolute runbook and dashboard links in the rendered rules, from the
configured base URLs; every alert's dashboard uid exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.monitoring.config import render_monitoring
from services.monitoring.links import LinkError, add_links, dashboard_uid
from services.monitoring.settings import MonitoringSettings
from tests.support.monitoring import DOCKER, PROMETHEUS_DIR, load_yaml

DASHBOARD_UIDS = {
    json.loads(path.read_text())["uid"]
    for path in (DOCKER / "grafana" / "dashboards").glob("*.json")
}


def _alerts(rules_dir: Path) -> list[tuple[str, dict]]:
    return [
        (group["name"], rule)
        for path in sorted(rules_dir.glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_every_alert_links_to_an_existing_dashboard() -> None:
    for group, rule in _alerts(PROMETHEUS_DIR / "rules"):
        assert dashboard_uid(group, rule["alert"]) in DASHBOARD_UIDS, rule["alert"]


def test_rendered_alerts_have_absolute_links_from_the_base_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITORING_RUNBOOK_BASE_URL", "https://git.example.org/ai-suite/blob/main/")
    monkeypatch.setenv("GRAFANA_URL", "https://grafana.example.org")
    rendered = render_monitoring(tmp_path, MonitoringSettings(data_dir=tmp_path))
    alerts = _alerts(rendered.prometheus.config.parent / "rules")
    assert len(alerts) == len(_alerts(PROMETHEUS_DIR / "rules"))
    for _group, rule in alerts:
        name = rule["alert"]
        assert rule["annotations"]["runbook_url"] == (
            f"https://git.example.org/ai-suite/blob/main/docs/ops/MONITORING_GUIDE.md#{name.lower()}"
        )
        assert rule["annotations"]["dashboard_url"].startswith("https://grafana.example.org/d/")


def test_default_links_are_absolute(tmp_path: Path) -> None:
    settings = MonitoringSettings(data_dir=tmp_path)
    rendered = render_monitoring(tmp_path, settings)
    (_, rule), *_ = _alerts(rendered.prometheus.config.parent / "rules")
    assert rule["annotations"]["runbook_url"].startswith(
        "https://github.com/local-ai-suite/local-ai-suite/blob/main/docs/ops/MONITORING_GUIDE.md#"
    )
    assert rule["annotations"]["dashboard_url"].startswith(f"http://{settings.host}:3000/d/")


def test_a_relative_base_or_an_unmapped_group_is_refused() -> None:
    rules = {"groups": [{"name": "new_group", "rules": [{"alert": "X", "expr": "1"}]}]}
    with pytest.raises(LinkError, match="GROUP_DASHBOARDS"):
        add_links(rules, runbook_base="https://x", grafana_url="https://g")
    with pytest.raises(LinkError, match="absolute"):
        add_links(rules, runbook_base="docs/", grafana_url="https://g")
