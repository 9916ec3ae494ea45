"""Helpers of the live monitoring checks (tests/e2e/test_monitoring_e2e.py).

A plain module, not a conftest: it runs the real Prometheus and Alertmanager binaries
against the stack's services, with the configuration rendered from the files under
``docker/`` (services.monitoring.config), and speaks their HTTP APIs. Everything that
waits does so against a deadline and reports what it saw last.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from ai_suite_pytest.stack import Stack

from services.core.supervisor import Supervisor
from services.monitoring.alerts_listener import AlertListener
from services.monitoring.config import MonitoringRender, render_alertmanager, render_prometheus
from services.monitoring.dashboards import PanelQuery, load_dashboard
from services.monitoring.dashboards import panel_queries as dashboard_queries
from services.monitoring.processes import (
    ALERTMANAGER_BINARIES,
    PROMETHEUS_BINARIES,
    alertmanager_spec,
    find_binary,
    prometheus_spec,
)
from services.monitoring.settings import MonitoringSettings
from tests.support.live import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = ROOT / "docker" / "grafana" / "dashboards"
# The stack's services Prometheus scrapes (the jobs of docker/prometheus/prometheus.yml).
SERVICE_JOBS = ("gateway", "rag", "mcp")
ALL_JOBS = (*SERVICE_JOBS, "prometheus", "alertmanager")
# Test timings: the real rules and routes, only faster (never a copy of them).
FOR_LIMIT = "5s"
INTERVAL = "1s"
ROUTE_TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
LOG_FIELDS = ("time", "level", "service", "logger", "message", "request_id")
# The compose backend's log files come from `docker compose logs --timestamps`: each line
# starts with Docker's RFC 3339 receive time, which is not part of what the service wrote.
_DOCKER_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ")

T = TypeVar("T")


def poll(
    probe: Callable[[], tuple[bool, T]], *, timeout: float, what: str, every: float = 0.5
) -> T:
    """Call ``probe`` until it reports success; raise AssertionError with its last result.

    ``probe`` returns ``(done, observation)``; the observation of the last attempt goes into
    the failure message, so a timeout says what was seen instead of only that time ran out.
    """
    deadline = time.monotonic() + timeout
    while True:
        done, seen = probe()
        if done:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (waited {timeout:g}s); last seen:\n{seen}")
        time.sleep(every)


def host_port(url: str) -> str:
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        raise ValueError(f"{url!r} has no host and port")
    return f"{parts.hostname}:{parts.port}"


# --- Prometheus and Alertmanager as child processes ----------------------------------


@dataclass
class Monitoring:
    """Prometheus and Alertmanager watching the stack, and the listener they deliver to."""

    prometheus_url: str
    alertmanager_url: str
    listener: AlertListener
    rendered: MonitoringRender
    http: httpx.Client = field(
        default_factory=lambda: httpx.Client(timeout=10.0, trust_env=False), repr=False
    )

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a Prometheus API answer (raises on an API error)."""
        response = self.http.get(f"{self.prometheus_url}{path}", params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: {response.status_code} {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's samples as ``[{"metric": {...}, "value": float}, ...]``."""
        data = self.api("/api/v1/query", query=expr)
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return [{"metric": {}, "value": float(result[1])}]
        if kind != "vector":
            raise AssertionError(f"{expr!r} gave a {kind}, not an instant vector")
        return [{"metric": item["metric"], "value": float(item["value"][1])} for item in result]

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/targets", state="active")["activeTargets"])

    def prometheus_alerts(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        return [
            alert
            for alert in self.api("/api/v1/alerts")["alerts"]
            if alert["labels"].get("alertname") == alertname
            and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]

    def alertmanager_alerts(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        matchers = [f'alertname="{alertname}"'] + [f'{k}="{v}"' for k, v in labels.items()]
        response = self.http.get(
            f"{self.alertmanager_url}/api/v2/alerts", params=[("filter", m) for m in matchers]
        )
        response.raise_for_status()
        return list(response.json())

    def wait_scraped_after(self, moment: float, *, timeout: float = 30.0) -> None:
        """Wait until every service target was scraped after ``moment`` (a time.time())."""
        jobs = "|".join(SERVICE_JOBS)

        def probe() -> tuple[bool, Any]:
            stamps = {
                s["metric"].get("job", "?"): s["value"]
                for s in self.query(f'timestamp(up{{job=~"{jobs}"}})')
            }
            done = set(stamps) == set(SERVICE_JOBS) and all(t > moment for t in stamps.values())
            return done, {job: round(t - moment, 2) for job, t in stamps.items()}

        poll(probe, timeout=timeout, what=f"a scrape of {SERVICE_JOBS} after the traffic")

    def wait_prometheus_firing(self, alertname: str, timeout: float, **labels: str) -> dict:
        def probe() -> tuple[bool, Any]:
            alerts = self.prometheus_alerts(alertname, **labels)
            firing = [a for a in alerts if a["state"] == "firing"]
            if firing:
                return True, firing[0]
            return False, alerts or self.api("/api/v1/alerts")["alerts"]

        return poll(probe, timeout=timeout, what=f"{alertname} {labels} firing in Prometheus")

    def wait_alertmanager_active(self, alertname: str, timeout: float, **labels: str) -> dict:
        def probe() -> tuple[bool, Any]:
            alerts = self.alertmanager_alerts(alertname, **labels)
            active = [a for a in alerts if a["status"]["state"] == "active"]
            return bool(active), active[0] if active else alerts

        return poll(probe, timeout=timeout, what=f"{alertname} {labels} active in Alertmanager")


def render(stack: Stack, out_dir: Path, settings: MonitoringSettings) -> MonitoringRender:
    """The real configuration, pointed at the stack and shortened for tests."""
    own = {
        "prometheus": f"{settings.host}:{settings.prometheus_port}",
        "alertmanager": f"{settings.host}:{settings.alertmanager_port}",
    }
    targets = {job: host_port(stack.url(job)) for job in SERVICE_JOBS} | own
    prometheus = render_prometheus(
        out_dir / "prometheus",
        targets=targets,
        alertmanager=own["alertmanager"],
        for_limit=FOR_LIMIT,
        scrape_interval=INTERVAL,
        evaluation_interval=INTERVAL,
    )
    alertmanager = render_alertmanager(out_dir / "alertmanager", settings, timings=ROUTE_TIMINGS)
    return MonitoringRender(prometheus, alertmanager)


def missing_binaries() -> str | None:
    """Why Prometheus or Alertmanager cannot run here, or None."""
    for candidates in (PROMETHEUS_BINARIES, ALERTMANAGER_BINARIES):
        try:
            find_binary(candidates)
        except RuntimeError as exc:
            return str(exc)
    return None


@contextmanager
def running_monitoring(stack: Stack, workdir: Path) -> Iterator[Monitoring]:
    """Prometheus and Alertmanager under a Supervisor, stopped (with the listener) at exit."""
    with AlertListener() as listener:
        settings = MonitoringSettings(
            data_dir=workdir / "data",
            host="127.0.0.1",
            prometheus_port=free_port(),
            alertmanager_port=free_port(),
            alerts_webhook_url=listener.url,
            # Whatever the environment says, these tests deliver to the listener only.
            slack_webhook_url=None,
            email_to=None,
            email_from=None,
            smtp_smarthost=None,
        )
        rendered = render(stack, workdir / "config", settings)
        supervisor = Supervisor(workdir / "logs")
        try:
            # Alertmanager first: Prometheus sends to it from its first evaluation.
            for spec in (
                alertmanager_spec(settings, rendered),
                prometheus_spec(settings, rendered),
            ):
                supervisor.wait_ready(supervisor.start(spec))
            monitoring = Monitoring(
                prometheus_url=f"http://{settings.host}:{settings.prometheus_port}",
                alertmanager_url=f"http://{settings.host}:{settings.alertmanager_port}",
                listener=listener,
                rendered=rendered,
            )
            try:
                yield monitoring
            finally:
                monitoring.http.close()
        finally:
            supervisor.stop_all()


# --- dashboards ------------------------------------------------------------------------


def dashboard_panel_queries() -> list[PanelQuery]:
    return [
        query
        for path in sorted(DASHBOARDS_DIR.glob("*.json"))
        for query in dashboard_queries(load_dashboard(path))
    ]


def has_data(samples: list[dict[str, Any]]) -> bool:
    """At least one sample a panel can draw (NaN, e.g. a quantile of no traffic, is none)."""
    return any(not math.isnan(sample["value"]) for sample in samples)


# --- logs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogProblem:
    service: str
    line_no: int
    line: str
    why: str

    def __str__(self) -> str:
        return f"{self.service}.log:{self.line_no}: {self.why}: {self.line[:200]}"


def parse_log(service: str, text: str) -> tuple[list[dict[str, Any]], list[LogProblem]]:
    """Each line of a service's log as a JSON record, and the lines that are not one."""
    records, problems = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _DOCKER_TIMESTAMP.sub("", raw, count=1)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            problems.append(LogProblem(service, number, line, "not JSON"))
            continue
        if not isinstance(record, dict):
            problems.append(LogProblem(service, number, line, "not a JSON object"))
            continue
        missing = [name for name in LOG_FIELDS if name not in record]
        if missing:
            problems.append(LogProblem(service, number, line, f"missing {', '.join(missing)}"))
        elif record["service"] != service:
            problems.append(LogProblem(service, number, line, f"service={record['service']!r}"))
        records.append(record)
    return records, problems


def read_logs(stack: Stack, services: tuple[str, ...]) -> dict[str, str]:
    """The full log of each service as the stack backend has it now."""
    stack.log_offsets()  # the compose backend copies `docker compose logs` into the files
    return {
        name: stack.log_path(name).read_text(encoding="utf-8", errors="replace")
        for name in services
    }
