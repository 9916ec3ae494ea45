"""A real Alertmanager, configured by the renderer, delivers to the alert listener: firing,
inhibition of a down service's other alerts, and the resolution."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.monitoring.alerts_listener import AlertListener
from services.monitoring.config import render_alertmanager
from services.monitoring.settings import MonitoringSettings
from tests.support.live import free_port

ROOT = Path(__file__).resolve().parents[3]


def _alertmanager_binary() -> str:
    for name in ("alertmanager", "prometheus-alertmanager"):
        if shutil.which(name):
            return name
    pytest.skip("alertmanager is not installed: run `make system-deps`")


@pytest.fixture
def listener() -> Iterator[AlertListener]:
    with AlertListener() as running:
        yield running


@pytest.fixture
def alertmanager(listener: AlertListener, tmp_path: Path) -> Iterator[str]:
    binary = _alertmanager_binary()
    settings = MonitoringSettings(alerts_webhook_url=listener.url, data_dir=tmp_path)
    config = render_alertmanager(
        tmp_path / "config",
        settings,
        timings={"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(trust_env=False) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get(f"{url}/-/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"alertmanager did not start: {process.stderr.read()!r}")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def _alert(name: str, service: str, *, ends_in: float) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "service": service, "severity": "critical"},
        "annotations": {"summary": f"{name} on {service}"},
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "endsAt": (now + timedelta(seconds=ends_in)).isoformat(),
    }


def test_fire_inhibit_and_resolve(alertmanager: str, listener: AlertListener) -> None:
    with httpx.Client(base_url=alertmanager, trust_env=False) as client:
        # The inhibiting alert first, and only once it is delivered the alerts it should
        # inhibit: Alertmanager's inhibitor learns of new alerts asynchronously, so alerts
        # posted together can race it (one run in many sent the gateway's High5xxRatio).
        # In production the source alert (the service is down) also fires first.
        source = [_alert("ServiceDown", "gateway", ends_in=300)]
        assert client.post("/api/v2/alerts", json=source).status_code == 200
        down = listener.wait_for(alertname="ServiceDown", status="firing", service="gateway")
        assert down.receiver == "critical"
        alerts = [
            _alert("High5xxRatio", "gateway", ends_in=300),
            _alert("High5xxRatio", "rag", ends_in=300),
        ]
        assert client.post("/api/v2/alerts", json=alerts).status_code == 200
        assert listener.wait_for(alertname="High5xxRatio", status="firing", service="rag")

        state = client.get("/api/v2/alerts", params={"filter": 'alertname="High5xxRatio"'}).json()
        by_service = {a["labels"]["service"]: a["status"] for a in state}
        assert by_service["gateway"]["state"] == "suppressed"
        assert by_service["gateway"]["inhibitedBy"]
        assert by_service["rag"]["state"] == "active"

        # Suppressed alerts are never sent: nothing for the gateway's 5xx alert so far.
        delivered = {(n.alertname, n.service) for n in listener.received}
        assert ("High5xxRatio", "gateway") not in delivered

        resolved = [_alert("ServiceDown", "gateway", ends_in=-1)]
        assert client.post("/api/v2/alerts", json=resolved).status_code == 200
        assert listener.wait_for(alertname="ServiceDown", status="resolved", service="gateway")
        # No longer inhibited, the gateway's 5xx alert is delivered now (its own group, so
        # it may arrive before or after the resolution).
        assert listener.wait_for(alertname="High5xxRatio", status="firing", service="gateway")


def test_cli_listen_prints_alerts(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from services.cli.alerts import alerts; alerts()",
            "listen",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = {
            "receiver": "critical",
            "status": "firing",
            "alerts": [_alert("ServiceDown", "mcp", ends_in=60)],
        }
        with httpx.Client(trust_env=False) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    response = client.post(f"http://127.0.0.1:{port}/alerts", json=body)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert f"listening for Alertmanager webhooks on http://127.0.0.1:{port}/alerts" in stderr
    (line,) = stdout.splitlines()
    assert "FIRING" in line
    assert line.endswith("ServiceDown service=mcp severity=critical: ServiceDown on mcp")
