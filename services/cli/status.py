"""``ai-suite status``: is the platform ready, and what has the supervisor seen?

Each service is probed on its readiness endpoint; a running ``ai-suite up`` adds what
only it knows (restarts, uptime, a service it gave up on and why) through its status
file (services/core/supervision.py). The exit status is 0 when every platform service
is ready: Prometheus and Alertmanager are optional, shown as ``absent`` when they are not
installed, and count only when the running ``ai-suite up`` started them.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import click
import httpx

from services.cli.output import table
from services.cli.platform import monitoring_installed, platform_services
from services.core.http import default_ssl_context
from services.core.settings import CoreSettings
from services.core.supervision import read_status, run_dir


@dataclass
class Backend:
    name: str
    reachable: bool
    detail: str


@dataclass
class ServiceStatus:
    name: str
    url: str
    state: str  # ready | degraded | not ready | down | absent | failed | restarting
    detail: str = ""
    optional: bool = False
    required: bool = True
    pid: int | None = None
    restarts: int | None = None
    uptime_seconds: float | None = None
    backends: list[Backend] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state in ("ready", "degraded")


def _probe(url: str, ready_path: str) -> tuple[str, str, dict[str, Any] | None]:
    """(state, detail, the /ready body when it is one of ours)."""
    try:
        # trust_env=False: never send probes of loopback services through HTTP_PROXY.
        response = httpx.get(
            url + ready_path, timeout=2.0, trust_env=False, verify=default_ssl_context()
        )
    except httpx.HTTPError as exc:
        return "down", type(exc).__name__, None
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else None
    if response.status_code == 200:
        degraded = (body or {}).get("degraded")
        if isinstance(degraded, list) and degraded:
            return "degraded", ", ".join(str(name) for name in degraded), body
        return "ready", "", body
    names = (body or {}).get("not_ready")
    if isinstance(names, list) and names:
        return "not ready", ", ".join(str(name) for name in names), body
    # Not one of our services, or an unexpected answer: one line for the table.
    text = " ".join(response.text.split())[:80]
    return "not ready", f"HTTP {response.status_code}" + (f": {text}" if text else ""), None


def _backends(body: dict[str, Any] | None) -> list[Backend]:
    """The gateway's inference backends, from its /ready checks (``backend:NAME``)."""
    checks = (body or {}).get("checks")
    if not isinstance(checks, dict):
        return []
    return [
        Backend(name.removeprefix("backend:"), result == "ok", "" if result == "ok" else result)
        for name, result in checks.items()
        if name.startswith("backend:")
    ]


def collect(settings: CoreSettings) -> tuple[list[ServiceStatus], dict[str, Any] | None]:
    supervisor = read_status(run_dir(settings.data_dir))
    supervised: dict[str, Any] = (supervisor or {}).get("services") or {}
    probes = [(spec.name, spec.url, spec.ready_path, False) for spec in platform_services(settings)]
    probes += [
        ("prometheus", settings.service_url(settings.prometheus_port), "/-/ready", True),
        ("alertmanager", settings.service_url(settings.alertmanager_port), "/-/ready", True),
    ]
    installed = None
    now = time.time()
    result = []
    for name, url, ready_path, optional in probes:
        row = ServiceStatus(name, url, "down", optional=optional)
        known = supervised.get(name)
        if optional and known is None:
            installed = monitoring_installed() if installed is None else installed
            row.required = False  # only what the running `ai-suite up` started counts
            if not installed:
                row.state = "absent"
                row.detail = "not installed (optional: `make system-deps`)"
                result.append(row)
                continue
        row.state, row.detail, body = _probe(url, ready_path)
        if name == "gateway":
            row.backends = _backends(body)
        if known is not None:
            row.pid = known.get("pid")
            row.restarts = known.get("restarts")
            if known.get("started_at") and known.get("state") in ("ready", "starting"):
                row.uptime_seconds = round(now - known["started_at"], 1)
            if known.get("state") == "failed":
                row.state, row.detail = "failed", str(known.get("reason", ""))
            elif known.get("state") in ("backoff", "stopping") and not row.ok:
                row.state, row.detail = "restarting", str(known.get("reason", ""))
        result.append(row)
    return result, supervisor


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def status(as_json: bool) -> None:
    """Show whether each service is ready; exit status 1 if a platform service is not.

    With a running `ai-suite up`: restarts and uptime of each service, and why a service
    it gave up on is down. Optional components that are not installed are "absent".
    """
    settings = CoreSettings()
    services, supervisor = collect(settings)
    ready = all(s.ok for s in services if s.required)
    if as_json:
        document = {
            "ready": ready,
            "supervisor_pid": (supervisor or {}).get("supervisor_pid"),
            "services": [asdict(s) for s in services],
        }
        click.echo(json.dumps(document, indent=2))
    else:
        rows = []
        for s in services:
            restarts = "-" if s.restarts is None else str(s.restarts)
            rows.append([s.name, s.url, s.state, restarts, _duration(s.uptime_seconds), s.detail])
            for backend in s.backends:
                state = "reachable" if backend.reachable else "unreachable"
                rows.append([f"  backend {backend.name}", "", state, "", "", backend.detail])
        header = ["SERVICE", "URL", "STATE", "RESTARTS", "UPTIME", "DETAIL"]
        click.echo(table(rows, header))
        if supervisor is None:
            click.echo(
                "(no `ai-suite up` runs for this data directory: restarts and uptime unknown)",
                err=True,
            )
    if not ready:
        sys.exit(1)
