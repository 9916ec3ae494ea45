"""``ai-suite status`` against services listening on real sockets: ready, not ready,
nothing listening, and another program on the port."""

from __future__ import annotations

import re
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
    monkeypatch.setattr("services.cli.main.monitoring_installed", lambda: False)


def test_status_lists_monitoring_when_installed(
    run: Run, gateway_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.cli.main.monitoring_installed", lambda: True)
    monkeypatch.setenv("PROMETHEUS_PORT", str(free_port()))
    result = run("status")
    assert result.exit_code == 1
    names = [row.split()[0] for row in result.stdout.splitlines()[1:]]
    assert names == ["rag", "mcp", "gateway", "prometheus", "alertmanager"]


def status_row(result: Result) -> list[str]:
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["SERVICE", "URL", "STATE", "DETAIL"]
    assert [row.split()[0] for row in rows] == ["rag", "mcp", "gateway"]
    (row,) = [row for row in rows if row.startswith("gateway")]
    return re.split(r"\s{2,}", row)


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
