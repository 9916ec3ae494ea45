"""amtool: the Alertmanager configuration is valid, every label set reaches the right
receivers (also with Slack and email configured), and broken configs are caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.monitoring.config import render_alertmanager
from services.monitoring.routing import route_receivers
from services.monitoring.settings import MonitoringSettings
from tests.support.monitoring import ALERTMANAGER_FILE, PROMETHEUS_DIR, dump_yaml, load_yaml, run

# label set -> the receivers it must reach (amtool prints them in routing-tree order)
ROUTES = [
    ({"alertname": "ServiceDown", "service": "gateway", "severity": "critical"}, "critical"),
    ({"alertname": "High5xxRatio", "service": "rag", "severity": "critical"}, "critical"),
    ({"alertname": "AuditWriteFailures", "service": "mcp", "severity": "critical"}, "critical"),
    ({"alertname": "HighLatencyP95", "service": "gateway", "severity": "warning"}, "warning"),
    ({"alertname": "LlmCircuitOpen", "service": "gateway", "severity": "warning"}, "warning"),
    ({"alertname": "ApprovalsExpired", "service": "mcp", "severity": "info"}, "default"),
    ({"alertname": "SomethingNew", "service": "rag"}, "default"),
    ({"alertname": "Watchdog", "service": "prometheus", "severity": "info"}, "deadmansswitch"),
]


def routes_to(amtool: str, config: Path, labels: dict[str, str]) -> str:
    result = run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            *(f"{k}={v}" for k, v in labels.items()),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def check_config(amtool: str, config: Path) -> tuple[int, str]:
    result = run([amtool, "check-config", str(config)])
    return result.returncode, result.stdout + result.stderr


def test_check_config(amtool: str) -> None:
    returncode, output = check_config(amtool, ALERTMANAGER_FILE)
    assert returncode == 0, output


def test_routing_table(amtool: str) -> None:
    got = [(labels, routes_to(amtool, ALERTMANAGER_FILE, labels)) for labels, _ in ROUTES]
    assert got == ROUTES


def test_every_alert_severity_has_its_route(amtool: str) -> None:
    """Each alert of the rule files, as Prometheus sends it, reaches its severity's receiver."""
    expected = {"critical": "critical", "warning": "warning", "info": "default"}
    rule_files = [PROMETHEUS_DIR / "rules" / name for name in ("alerts.yml", "slo.yml")]
    for group in (g for path in rule_files for g in load_yaml(path)["groups"]):
        for rule in (r for r in group["rules"] if "alert" in r):
            labels = {"alertname": rule["alert"], "service": "gateway", **rule["labels"]}
            # The Watchdog has its own route (the dead man's switch), whatever its severity.
            want = "deadmansswitch" if rule["alert"] == "Watchdog" else expected[labels["severity"]]
            assert routes_to(amtool, ALERTMANAGER_FILE, labels) == want, rule["alert"]


@pytest.fixture
def channels_env(monkeypatch: pytest.MonkeyPatch) -> MonitoringSettings:
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/T/B/x")
    monkeypatch.setenv("ALERTS_SLACK_CHANNEL", "#ops")
    monkeypatch.setenv("ALERTS_EMAIL_TO", "ops@example.org")
    monkeypatch.setenv("ALERTS_EMAIL_FROM", "alertmanager@example.org")
    monkeypatch.setenv("ALERTS_SMTP_SMARTHOST", "smtp.example.org:587")
    monkeypatch.setenv("ALERTS_SMTP_USERNAME", "alertmanager")
    monkeypatch.setenv("ALERTS_SMTP_PASSWORD", "s3cret")
    return MonitoringSettings()


def test_rendered_config_with_slack_and_email_is_valid_and_routes_alike(
    amtool: str, tmp_path: Path, channels_env: MonitoringSettings
) -> None:
    rendered = render_alertmanager(tmp_path, channels_env)
    returncode, output = check_config(amtool, rendered)
    assert returncode == 0, output
    for labels, receiver in ROUTES:
        assert routes_to(amtool, rendered, labels) == receiver


# --- the checks can fail --------------------------------------------------------------------


def test_a_route_to_a_missing_receiver_is_rejected(amtool: str, tmp_path: Path) -> None:
    config = load_yaml(ALERTMANAGER_FILE)
    config["route"]["routes"][0]["receiver"] = "pager"
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(dump_yaml(config))
    returncode, output = check_config(amtool, broken)
    assert returncode != 0
    assert "pager" in output
    assert "pager" in route_receivers(config["route"]) - {r["name"] for r in config["receivers"]}


def test_a_changed_route_breaks_the_routing_table(amtool: str, tmp_path: Path) -> None:
    config = load_yaml(ALERTMANAGER_FILE)
    critical = next(r for r in config["route"]["routes"] if r["receiver"] == "critical")
    critical["matchers"] = ['severity="page"']
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(dump_yaml(config))
    assert routes_to(amtool, broken, ROUTES[0][0]) != ROUTES[0][1]
