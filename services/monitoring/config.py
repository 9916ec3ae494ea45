"""Render the Prometheus and Alertmanager configuration from the files under ``docker/``.

The files in the repository are the single source of truth. Whatever differs per run (ports
of `ai-suite up`, a test's short ``for`` durations, Slack or e-mail from the environment)
is applied by *transforming* those files into an output directory, never by keeping a
second copy of the rules or routes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.core.yamlfile import safe_load
from services.monitoring.durations import format_duration, parse_duration
from services.monitoring.links import add_links
from services.monitoring.settings import MonitoringSettings

DOCKER_DIR = Path(__file__).resolve().parents[2] / "docker"
PROMETHEUS_DIR = DOCKER_DIR / "prometheus"
ALERTMANAGER_FILE = DOCKER_DIR / "alertmanager" / "alertmanager.yml"
# The jobs of prometheus.yml that scrape the platform's own services.
SERVICE_JOBS = ("gateway", "rag", "mcp")
ROUTE_TIMINGS = ("group_wait", "group_interval", "repeat_interval")


class ConfigError(ValueError):
    """The source configuration cannot be rendered as asked."""


def _load(path: Path) -> dict[str, Any]:
    try:
        data = safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top")
    return data


def _dump(path: Path, data: Mapping[str, Any], *, private: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Rendered by services/monitoring/config.py; edit the source under docker/.\n"
    text += yaml.safe_dump(dict(data), sort_keys=False, width=100)
    if private:
        # Slack webhook URLs and SMTP passwords: readable by the owner only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(path, 0o600)
    else:
        path.write_text(text)
    return path


def shorten_for(rules: dict[str, Any], limit: str) -> dict[str, Any]:
    """Alert rules with every ``for`` longer than ``limit`` cut to ``limit`` (in place)."""
    cap = parse_duration(limit)
    for group in rules.get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" in rule and "for" in rule and parse_duration(rule["for"]) > cap:
                rule["for"] = format_duration(cap)
    return rules


@dataclass(frozen=True)
class PrometheusRender:
    config: Path
    rule_files: tuple[Path, ...]


def render_prometheus(
    out_dir: Path,
    *,
    targets: Mapping[str, str] | None = None,
    alertmanager: str | None = None,
    for_limit: str | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    source: Path = PROMETHEUS_DIR,
    runbook_base: str | None = None,
    grafana_url: str | None = None,
) -> PrometheusRender:
    """Write prometheus.yml and its rule files to ``out_dir``.

    ``targets`` maps a job name (gateway, rag, mcp, prometheus, alertmanager) to the
    ``host:port`` it scrapes; ``alertmanager`` is where alerts are sent; ``for_limit``
    caps every alert's ``for`` (tests); the intervals replace the global ones;
    ``runbook_base`` and ``grafana_url`` make runbook links absolute and add dashboard links
    (services/monitoring/links.py).
    """
    config = _load(source / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config.get("scrape_configs") or []}
    for job_name, address in (targets or {}).items():
        if job_name not in jobs:
            raise ConfigError(
                f"no scrape job {job_name!r} in {source / 'prometheus.yml'}"
                f" (jobs: {', '.join(jobs)})"
            )
        static = jobs[job_name].get("static_configs") or [{}]
        jobs[job_name]["static_configs"] = [{**static[0], "targets": [address]}]
    if alertmanager:
        for entry in config.get("alerting", {}).get("alertmanagers") or []:
            entry["static_configs"] = [{"targets": [alertmanager]}]
    for key, value in (
        ("scrape_interval", scrape_interval),
        ("evaluation_interval", evaluation_interval),
    ):
        if value:
            parse_duration(value)
            config.setdefault("global", {})[key] = value
    if scrape_interval:
        # The timeout may not exceed the interval.
        timeout = config["global"].get("scrape_timeout")
        if timeout and parse_duration(timeout) > parse_duration(scrape_interval):
            config["global"]["scrape_timeout"] = scrape_interval

    written = []
    for relative in config.get("rule_files") or []:
        rules = _load(source / relative)
        if for_limit:
            shorten_for(rules, for_limit)
        if runbook_base and grafana_url:
            add_links(rules, runbook_base=runbook_base, grafana_url=grafana_url)
        written.append(_dump(out_dir / relative, rules))
    return PrometheusRender(_dump(out_dir / "prometheus.yml", config), tuple(written))


def _set_timings(route: dict[str, Any], timings: Mapping[str, str]) -> None:
    route.update(timings)
    for child in route.get("routes") or []:
        _set_timings(child, timings)


def render_alertmanager(
    out_dir: Path,
    settings: MonitoringSettings,
    *,
    timings: Mapping[str, str] | None = None,
    source: Path = ALERTMANAGER_FILE,
) -> Path:
    """Write alertmanager.yml to ``out_dir`` with the channels configured in ``settings``.

    Every webhook receiver posts to ``settings.listener_url``; Slack is added to the
    ``critical`` and ``warning`` receivers, e-mail to ``critical`` (pages only). ``timings``
    (group_wait, group_interval, repeat_interval) replace those of every route (tests).
    """
    config = _load(source)
    receivers = {r["name"]: r for r in config.get("receivers") or []}
    for receiver in receivers.values():
        for hook in receiver.get("webhook_configs") or []:
            hook["url"] = settings.listener_url
    if settings.slack_webhook_url is not None:
        for name in ("critical", "warning"):
            slack: dict[str, Any] = {
                "api_url": settings.slack_webhook_url.get_secret_value(),
                "send_resolved": True,
                "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}"
                " ({{ .CommonLabels.service }})",
                "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
            }
            if settings.slack_channel:
                slack["channel"] = settings.slack_channel
            _receiver(receivers, name, source)["slack_configs"] = [slack]
    if settings.email_enabled:
        email: dict[str, Any] = {
            "to": settings.email_to,
            "from": settings.email_from,
            "smarthost": settings.smtp_smarthost,
            "require_tls": settings.smtp_require_tls,
            "send_resolved": True,
        }
        if settings.smtp_username:
            email["auth_username"] = settings.smtp_username
        if settings.smtp_password is not None:
            email["auth_password"] = settings.smtp_password.get_secret_value()
        _receiver(receivers, "critical", source)["email_configs"] = [email]
    if timings:
        unknown = set(timings) - set(ROUTE_TIMINGS)
        if unknown:
            raise ConfigError(f"unknown route timing(s): {', '.join(sorted(unknown))}")
        for value in timings.values():
            parse_duration(value)
        _set_timings(config["route"], timings)
    return _dump(out_dir / "alertmanager.yml", config, private=True)


def _receiver(receivers: dict[str, dict[str, Any]], name: str, source: Path) -> dict[str, Any]:
    if name not in receivers:
        raise ConfigError(f"{source} has no receiver {name!r} to add a channel to")
    return receivers[name]


@dataclass(frozen=True)
class MonitoringRender:
    prometheus: PrometheusRender
    alertmanager: Path


def render_monitoring(
    out_dir: Path,
    settings: MonitoringSettings,
    *,
    for_limit: str | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    timings: Mapping[str, str] | None = None,
) -> MonitoringRender:
    """Both configurations for the platform as ``settings`` runs it (hosts and ports).

    Arguments left out come from ``settings`` (MONITORING_FOR_LIMIT, ALERTMANAGER_GROUP_WAIT,
    ...), so a test can shorten everything through the environment of ``ai-suite up``.
    """
    host = settings.host
    targets = {
        "gateway": f"{host}:{settings.gateway_port}",
        "rag": f"{host}:{settings.rag_port}",
        "mcp": f"{host}:{settings.mcp_port}",
        "prometheus": f"{host}:{settings.prometheus_port}",
        "alertmanager": f"{host}:{settings.alertmanager_port}",
    }
    prometheus = render_prometheus(
        out_dir / "prometheus",
        targets=targets,
        alertmanager=targets["alertmanager"],
        for_limit=for_limit or settings.for_limit,
        scrape_interval=scrape_interval or settings.scrape_interval,
        evaluation_interval=evaluation_interval or settings.evaluation_interval,
        runbook_base=settings.runbook_base_url,
        grafana_url=settings.grafana_link_url,
    )
    alertmanager = render_alertmanager(
        out_dir / "alertmanager", settings, timings=timings or settings.route_timings
    )
    return MonitoringRender(prometheus, alertmanager)
