"""``ai-suite status`` against services listening on real sockets: ready, not ready,
nothing listening, another program on the port, optional components absent, the gateway's
backends, and what a running ``ai-suite up`` recorded (restarts, uptime, given up)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from services.core.app import build_service_app
from services.core.health import Check
from services.core.supervision import STATUS_FILE, run_dir, write_status
from tests.support.live import free_port, serve_in_thread

Run = Callable[..., Result]


# --- status -------------------------------------------------------------------


@pytest.fixture
def gateway_port(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    port = free_port()
    monkeypatch.setenv("GATEWAY_PORT", str(port))
    return port


@pytest.fixture(autouse=True)
def without_monitoring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Status rows for Prometheus/Alertmanager appear only where they are installed."""
    monkeypatch.setattr("services.cli.status.monitoring_installed", lambda: False)


def test_status_lists_monitoring_when_installed(
    run: Run, gateway_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.cli.status.monitoring_installed", lambda: True)
    monkeypatch.setenv("PROMETHEUS_PORT", str(free_port()))
    result = run("status")
    assert result.exit_code == 1
    names = [row.split()[0] for row in result.stdout.splitlines()[1:]]
    assert names == ["rag", "mcp", "gateway", "prometheus", "alertmanager"]


def test_status_lists_monitoring_as_absent_when_not_installed(run: Run, gateway_port: int) -> None:
    result = run("status")

    rows = {row.split()[0]: re.split(r"\s{2,}", row) for row in result.stdout.splitlines()[1:]}
    assert rows["prometheus"][2:] == [
        "absent",
        "-",
        "-",
        "not installed (optional: `make system-deps`)",
    ]
    assert rows["alertmanager"][2] == "absent"


def status_row(result: Result) -> list[str]:
    """The gateway's row without the RESTARTS and UPTIME columns (no `ai-suite up` here)."""
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["SERVICE", "URL", "STATE", "RESTARTS", "UPTIME", "DETAIL"]
    names = [row.split()[0] for row in rows if not row.startswith(" ")]
    assert names == ["rag", "mcp", "gateway", "prometheus", "alertmanager"]
    (row,) = [row for row in rows if row.startswith("gateway")]
    name, url, state, restarts, uptime, *detail = re.split(r"\s{2,}", row)
    assert (restarts, uptime) == ("-", "-")
    return [name, url, state, *detail]


def test_status_when_nothing_listens(run: Run, gateway_port: int) -> None:
    result = run("status")

    assert result.exit_code == 1
    name, url, state, *detail = status_row(result)
    assert (name, url, state) == ("gateway", f"http://127.0.0.1:{gateway_port}", "down")
    assert detail == ["ConnectError"]


def _gateway(*failing: str) -> FastAPI:
    parts = build_service_app("gateway")

    async def broken() -> str:
        return "upstream unreachable"

    parts.checks.extend(Check(name, broken) for name in failing)
    return parts.app


@pytest.mark.usefixtures("dead_proxy")
def test_status_when_ready(run: Run, gateway_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        serve_in_thread(_gateway()) as rag,
        serve_in_thread(_gateway()) as mcp,
        serve_in_thread(_gateway(), port=gateway_port),
    ):
        monkeypatch.setenv("RAG_PORT", rag.rsplit(":", 1)[1])
        monkeypatch.setenv("MCP_PORT", mcp.rsplit(":", 1)[1])
        result = run("status")

    assert result.exit_code == 0, result.output
    assert status_row(result) == ["gateway", f"http://127.0.0.1:{gateway_port}", "ready"]


def test_status_when_not_ready_names_the_failing_checks(run: Run, gateway_port: int) -> None:
    with serve_in_thread(_gateway("inference", "database"), port=gateway_port):
        result = run("status")

    assert result.exit_code == 1
    assert status_row(result)[2:] == ["not ready", "database, inference"]


def test_status_when_another_program_holds_the_port(run: Run, gateway_port: int) -> None:
    async def ready(_: Request) -> PlainTextResponse:
        return PlainTextResponse("<html>\n  <p>not\n here</p>\n</html>", status_code=404)

    with serve_in_thread(Starlette(routes=[Route("/ready", ready)]), port=gateway_port):
        result = run("status")

    assert result.exit_code == 1
    assert status_row(result)[2:] == ["not ready", "HTTP 404: <html> <p>not here</p> </html>"]


# --- the gateway's backends, and what a running `ai-suite up` recorded -----------------


def _backend(reason: str | None) -> Check:
    async def probe() -> str | None:
        return reason

    return Check("backend:local-llama", probe, critical=False)


@pytest.fixture
def platform_ports(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    ports = {name: free_port() for name in ("gateway", "mcp", "rag")}
    for name, port in ports.items():
        monkeypatch.setenv(f"{name.upper()}_PORT", str(port))
    return ports


@pytest.mark.usefixtures("dead_proxy")
@pytest.mark.parametrize(
    ("reason", "state", "backend_row"),
    [
        (None, "ready", ["", "backend local-llama", "reachable"]),
        (
            "not reachable at http://x/v1",
            "degraded",
            ["", "backend local-llama", "unreachable", "not reachable at http://x/v1"],
        ),
    ],
)
def test_status_shows_each_backend_and_a_degraded_gateway_is_ready(
    run: Run, platform_ports: dict[str, int], reason: str | None, state: str, backend_row: list[str]
) -> None:
    gateway = build_service_app("gateway")
    gateway.checks.append(_backend(reason))
    with (
        serve_in_thread(_gateway(), port=platform_ports["rag"]),
        serve_in_thread(_gateway(), port=platform_ports["mcp"]),
        serve_in_thread(gateway.app, port=platform_ports["gateway"]),
    ):
        result = run("status")

    assert result.exit_code == 0, result.output
    rows = [re.split(r"\s{2,}", row.rstrip()) for row in result.stdout.splitlines()]
    (gateway_row,) = [row for row in rows if row[0] == "gateway"]
    assert gateway_row[2] == state
    assert rows[rows.index(gateway_row) + 1] == backend_row


@pytest.mark.usefixtures("dead_proxy")
def test_status_shows_restarts_uptime_and_why_a_service_was_given_up(
    run: Run, data_dir: Path, platform_ports: dict[str, int]
) -> None:
    started = time.time() - 125
    recorded = {
        "rag": {
            "state": "failed",
            "pid": None,
            "restarts": 5,
            "started_at": started,
            "reason": "exited during start-up (code 1); gave up after 5 restarts within 60s",
            "restarts_by_reason": {"crash": 5, "requested": 0},
        },
        "mcp": {
            "state": "ready",
            "pid": 4242,
            "restarts": 1,
            "started_at": started,
            "reason": "",
            "restarts_by_reason": {"crash": 0, "requested": 1},
        },
        "gateway": {
            "state": "ready",
            "pid": 4343,
            "restarts": 0,
            "started_at": started,
            "reason": "",
            "restarts_by_reason": {"crash": 0, "requested": 0},
        },
    }
    # Written by this process: its pid is alive, so the file counts as a running `up`'s.
    write_status(run_dir(data_dir), recorded, {})
    with (
        serve_in_thread(_gateway(), port=platform_ports["mcp"]),
        serve_in_thread(_gateway(), port=platform_ports["gateway"]),
    ):
        table = run("status")
        as_json = run("status", "--json")

    assert table.exit_code == as_json.exit_code == 1
    rows = {row.split()[0]: re.split(r"\s{2,}", row) for row in table.stdout.splitlines()[1:]}
    assert rows["rag"][2:] == ["failed", "5", "-", recorded["rag"]["reason"]]
    assert rows["mcp"][2:5] == ["ready", "1", "2m05s"]
    assert rows["gateway"][2:5] == ["ready", "0", "2m05s"]
    document = json.loads(as_json.stdout)
    assert document["ready"] is False
    assert document["supervisor_pid"] == os.getpid()
    services = {s["name"]: s for s in document["services"]}
    assert services["rag"]["state"] == "failed"
    assert services["mcp"]["pid"] == 4242
    assert 125 <= services["mcp"]["uptime_seconds"] < 3600
    assert services["prometheus"] == {
        "name": "prometheus",
        "url": services["prometheus"]["url"],
        "state": "absent",
        "detail": "not installed (optional: `make system-deps`)",
        "optional": True,
        "required": False,
        "pid": None,
        "restarts": None,
        "uptime_seconds": None,
        "backends": [],
    }


def test_a_status_file_left_by_a_dead_supervisor_is_ignored(
    run: Run, data_dir: Path, platform_ports: dict[str, int]
) -> None:
    write_status(run_dir(data_dir), {"rag": {"state": "ready", "restarts": 3}}, {})
    path = run_dir(data_dir) / STATUS_FILE
    document = json.loads(path.read_text())
    document["supervisor_started"] -= 1  # as if the pid had been reused by another process
    path.write_text(json.dumps(document))

    result = run("status", "--json")

    assert json.loads(result.stdout)["supervisor_pid"] is None
    restart = run("restart", "rag")
    assert restart.exit_code == 1
    assert "the platform is not running for" in restart.output


def test_restart_refuses_an_unknown_service(run: Run, data_dir: Path) -> None:
    write_status(run_dir(data_dir), {"rag": {"state": "ready"}, "mcp": {"state": "ready"}}, {})

    result = run("restart", "gatway")

    assert result.exit_code == 1
    assert "unknown service 'gatway'; the running platform has: rag, mcp" in result.output
    assert not list((run_dir(data_dir) / "control").glob("*.json"))  # nothing was sent
