"""Rendering: variants of the real configuration (ports, short `for`, channels), no copies."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from services.cli.alerts import alerts
from services.cli.main import main
from services.core.settings_errors import InvalidSettings
from services.monitoring import processes
from services.monitoring.config import (
    ConfigError,
    render_alertmanager,
    render_monitoring,
    render_prometheus,
    shorten_for,
)
from services.monitoring.durations import format_duration, parse_duration
from services.monitoring.settings import MonitoringSettings
from tests.support.monitoring import ALERTMANAGER_FILE, PROMETHEUS_DIR, load_yaml

SECRET_URL = "https://hooks.slack.example/services/T0/B0/secret"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "ALERTS_WEBHOOK_URL",
        "ALERTS_LISTEN_PORT",
        "ALERTS_SLACK_WEBHOOK_URL",
        "ALERTS_SLACK_CHANNEL",
        "ALERTS_EMAIL_TO",
        "ALERTS_EMAIL_FROM",
        "ALERTS_SMTP_SMARTHOST",
        "ALERTS_SMTP_USERNAME",
        "ALERTS_SMTP_PASSWORD",
        "MONITORING_FOR_LIMIT",
        "MONITORING_SCRAPE_INTERVAL",
        "MONITORING_EVALUATION_INTERVAL",
        "ALERTMANAGER_GROUP_WAIT",
        "ALERTMANAGER_GROUP_INTERVAL",
        "ALERTMANAGER_REPEAT_INTERVAL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AI_SUITE_DATA_DIR", str(tmp_path / "data"))


def _alerts(rules_dir: Path) -> dict[str, dict]:
    return {
        rule["alert"]: rule
        for group in load_yaml(rules_dir / "alerts.yml")["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_render_prometheus_changes_targets_intervals_and_for(tmp_path: Path) -> None:
    rendered = render_prometheus(
        tmp_path,
        targets={"gateway": "127.0.0.1:18000", "mcp": "127.0.0.1:18020"},
        alertmanager="127.0.0.1:19093",
        for_limit="5s",
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    config = load_yaml(rendered.config)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["gateway"]["static_configs"] == [
        {"targets": ["127.0.0.1:18000"], "labels": {"service": "gateway"}}
    ]
    assert jobs["rag"]["static_configs"][0]["targets"] == ["127.0.0.1:8002"]  # untouched
    assert config["alerting"]["alertmanagers"][0]["static_configs"] == [
        {"targets": ["127.0.0.1:19093"]}
    ]
    assert config["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    original, short = _alerts(PROMETHEUS_DIR / "rules"), _alerts(tmp_path / "rules")
    assert original.keys() == short.keys()
    for name, rule in short.items():
        assert rule.get("for") == ("5s" if "for" in original[name] else None), name
        assert rule["expr"] == original[name]["expr"]
        assert rule["annotations"] == original[name]["annotations"]
    assert {p.name for p in rendered.rule_files} == {"recording.yml", "slo.yml", "alerts.yml"}


def test_render_prometheus_refuses_unknown_jobs_and_durations(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no scrape job 'qdrant'"):
        render_prometheus(tmp_path, targets={"qdrant": "127.0.0.1:6333"})
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        render_prometheus(tmp_path, scrape_interval="soon")


def test_render_prometheus_reports_unreadable_sources(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "prometheus.yml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a YAML mapping"):
        render_prometheus(tmp_path / "out", source=tmp_path / "src")
    with pytest.raises(ConfigError, match="cannot read"):
        render_prometheus(tmp_path / "out", source=tmp_path / "missing")


def test_shorten_for_only_shortens() -> None:
    rules = {"groups": [{"rules": [{"alert": "A", "for": "10m"}, {"alert": "B", "for": "2s"}]}]}
    shorten_for(rules, "5s")
    assert [r["for"] for r in rules["groups"][0]["rules"]] == ["5s", "2s"]


@pytest.mark.usefixtures("clean_env")
def test_render_alertmanager_default_is_the_listener_only(tmp_path: Path) -> None:
    path = render_alertmanager(tmp_path, MonitoringSettings())
    config = load_yaml(path)
    source = load_yaml(ALERTMANAGER_FILE)
    assert config["route"] == source["route"]
    assert config["inhibit_rules"] == source["inhibit_rules"]
    assert config["receivers"] == source["receivers"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.usefixtures("clean_env")
def test_render_alertmanager_adds_channels_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTS_WEBHOOK_URL", "http://127.0.0.1:19095/alerts")
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_URL", SECRET_URL)
    monkeypatch.setenv("ALERTS_SLACK_CHANNEL", "#ops")
    monkeypatch.setenv("ALERTS_EMAIL_TO", "ops@example.org")
    monkeypatch.setenv("ALERTS_EMAIL_FROM", "am@example.org")
    monkeypatch.setenv("ALERTS_SMTP_SMARTHOST", "smtp.example.org:587")
    monkeypatch.setenv("ALERTS_SMTP_USERNAME", "am")
    monkeypatch.setenv("ALERTS_SMTP_PASSWORD", "pw")
    config = load_yaml(
        render_alertmanager(
            tmp_path, MonitoringSettings(), timings={"group_wait": "1s", "group_interval": "2s"}
        )
    )
    receivers = {r["name"]: r for r in config["receivers"]}
    for receiver in receivers.values():
        assert receiver["webhook_configs"][0]["url"] == "http://127.0.0.1:19095/alerts"
    assert receivers["critical"]["slack_configs"][0]["api_url"] == SECRET_URL
    assert receivers["warning"]["slack_configs"][0]["channel"] == "#ops"
    assert "slack_configs" not in receivers["default"]
    assert receivers["critical"]["email_configs"][0]["auth_password"] == "pw"
    assert "email_configs" not in receivers["warning"]
    assert config["route"]["group_wait"] == "1s"
    assert all(child["group_interval"] == "2s" for child in config["route"]["routes"])


@pytest.mark.usefixtures("clean_env")
def test_render_alertmanager_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown route timing"):
        render_alertmanager(tmp_path, MonitoringSettings(), timings={"group_by": "1s"})
    source = tmp_path / "am.yml"
    source.write_text("route: {receiver: x}\nreceivers: [{name: x}]\n")
    settings = MonitoringSettings(slack_webhook_url=SECRET_URL)
    with pytest.raises(ConfigError, match="no receiver 'critical'"):
        render_alertmanager(tmp_path, settings, source=source)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"ALERTS_EMAIL_TO": "a@b.c"}, "missing: ALERTS_EMAIL_FROM, ALERTS_SMTP_SMARTHOST"),
        (
            {"ALERTS_EMAIL_TO": "a@b", "ALERTS_EMAIL_FROM": "c@d", "ALERTS_SMTP_SMARTHOST": "smtp"},
            "host:port",
        ),
        ({"ALERTS_SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, "http:// or https://"),
        ({"ALERTS_LISTEN_PORT": "70000"}, r"expected an integer \(0-65535\)"),
        ({"MONITORING_FOR_LIMIT": "5 seconds"}, "not a Prometheus duration"),
    ],
)
def test_settings_say_what_is_wrong(
    env: dict[str, str], complaint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSettings, match=complaint):
        MonitoringSettings()


@pytest.mark.usefixtures("clean_env")
def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = MonitoringSettings()
    assert settings.listener_url == "http://127.0.0.1:9095/alerts"
    assert not settings.email_enabled
    monkeypatch.setenv("ALERTS_LISTEN_PORT", "19095")
    assert MonitoringSettings().listener_url == "http://127.0.0.1:19095/alerts"


@pytest.mark.usefixtures("clean_env")
def test_render_monitoring_and_process_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "18000")
    monkeypatch.setenv("PROMETHEUS_PORT", "19090")
    settings = MonitoringSettings()
    rendered = render_monitoring(tmp_path, settings, for_limit="2s", timings={"group_wait": "1s"})
    config = load_yaml(rendered.prometheus.config)
    targets = {
        j["job_name"]: j["static_configs"][0]["targets"][0] for j in config["scrape_configs"]
    }
    assert targets["gateway"] == "127.0.0.1:18000"
    assert targets["prometheus"] == "127.0.0.1:19090"
    assert load_yaml(rendered.alertmanager)["route"]["group_wait"] == "1s"

    monkeypatch.setattr(processes.shutil, "which", lambda name: f"/usr/bin/{name}")
    prometheus = processes.prometheus_spec(settings, rendered)
    assert prometheus.port == 19090
    assert prometheus.ready_path == "/-/ready"
    assert f"--config.file={rendered.prometheus.config}" in prometheus.argv
    assert "--storage.tsdb.retention.time=7d" in prometheus.argv
    alertmanager = processes.alertmanager_spec(settings, rendered)
    assert alertmanager.argv[0] == "/usr/bin/alertmanager"
    assert "--cluster.listen-address=" in alertmanager.argv

    monkeypatch.setattr(processes.shutil, "which", lambda name: None)
    with pytest.raises(processes.MissingBinary, match="make system-deps"):
        processes.alertmanager_spec(settings, rendered)


@pytest.mark.usefixtures("clean_env")
def test_render_monitoring_takes_test_knobs_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITORING_FOR_LIMIT", "3s")
    monkeypatch.setenv("MONITORING_SCRAPE_INTERVAL", "1s")
    monkeypatch.setenv("MONITORING_EVALUATION_INTERVAL", "1s")
    monkeypatch.setenv("ALERTMANAGER_GROUP_WAIT", "1s")
    monkeypatch.setenv("ALERTMANAGER_REPEAT_INTERVAL", "1m")
    rendered = render_monitoring(tmp_path, MonitoringSettings())
    assert load_yaml(rendered.prometheus.config)["global"]["evaluation_interval"] == "1s"
    assert _alerts(tmp_path / "prometheus" / "rules")["High5xxRatio"]["for"] == "3s"
    route = load_yaml(rendered.alertmanager)["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s",
        "5m",
        "1m",
    )


@pytest.mark.usefixtures("clean_env")
def test_cli_render_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_URL", SECRET_URL)
    result = CliRunner().invoke(alerts, ["render-config", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "alertmanager.yml")
    assert "slack" in result.stderr
    assert SECRET_URL not in result.output

    monkeypatch.setenv("ALERTS_EMAIL_TO", "someone@example.org")
    monkeypatch.setattr(sys, "argv", ["ai-suite", "alerts", "render-config", "--out", "x"])
    with pytest.raises(SystemExit) as exited:
        main()  # the entry point turns invalid settings into one line
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "ai-suite: invalid configuration: e-mail alerts need ALERTS_EMAIL_TO, ALERTS_EMAIL_FROM,"
        " ALERTS_SMTP_SMARTHOST; missing: ALERTS_EMAIL_FROM, ALERTS_SMTP_SMARTHOST\n"
    )


@pytest.mark.usefixtures("clean_env")
def test_cli_listen_reports_a_busy_port() -> None:
    from services.monitoring.alerts_listener import AlertListener

    # The busy port and the listener on one host, named explicitly: a listener on another
    # address (AI_SUITE_HOST=127.0.0.2) would bind and serve until the test times out.
    with AlertListener(host="127.0.0.1") as busy:
        result = CliRunner().invoke(
            alerts, ["listen", "--host", "127.0.0.1", "--port", str(busy.port)]
        )
    assert result.exit_code == 1
    assert "cannot listen" in result.output


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("7d", 604800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@given(st.integers(min_value=0, max_value=10**9))
def test_duration_round_trip(millis: int) -> None:
    assert parse_duration(format_duration(millis / 1000)) == pytest.approx(millis / 1000)


def test_format_duration_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)
