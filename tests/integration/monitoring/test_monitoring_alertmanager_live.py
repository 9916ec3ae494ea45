"""A real Alertmanager, configured by the renderer, delivers to the alert listener: firing,
inhibition of a down service's other alerts, and the resolution."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def _running_alertmanager(config: Path, tmp_path: Path) -> Iterator[str]:
    binary = _alertmanager_binary()
    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_path = tmp_path / "alertmanager.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        # A file, not a pipe nobody reads while it runs: a full pipe would block its logging.
        stderr=log,
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
                    raise RuntimeError(f"alertmanager did not start: {log_path.read_text()}")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def alertmanager(listener: AlertListener, tmp_path: Path) -> Iterator[str]:
    settings = MonitoringSettings(alerts_webhook_url=listener.url, data_dir=tmp_path)
    config = render_alertmanager(
        tmp_path / "config",
        settings,
        timings={"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
    )
    with _running_alertmanager(config, tmp_path) as url:
        yield url


@pytest.fixture
def production_alertmanager(listener: AlertListener, tmp_path: Path) -> Iterator[str]:
    """The route timings exactly as docker/alertmanager/alertmanager.yml has them."""
    settings = MonitoringSettings(alerts_webhook_url=listener.url, data_dir=tmp_path)
    with _running_alertmanager(render_alertmanager(tmp_path / "config", settings), tmp_path) as url:
        yield url


def _alert(
    name: str, service: str, *, ends_in: float, started_ago: float = 60
) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "service": service, "severity": "critical"},
        "annotations": {"summary": f"{name} on {service}"},
        "startsAt": (now - timedelta(seconds=started_ago)).isoformat(),
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

        # The gateway's High5xxRatio is its own group, flushed on its own timer: the rag
        # delivery above says nothing about whether the inhibitor has marked the gateway's
        # alert yet (the one failure seen in ~25 runs read "active" here). Wait for the mark.
        deadline = time.monotonic() + 30
        while True:
            state = client.get(
                "/api/v2/alerts", params={"filter": 'alertname="High5xxRatio"'}
            ).json()
            by_service = {a["labels"]["service"]: a["status"] for a in state}
            if by_service.get("gateway", {}).get("state") == "suppressed":
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
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


def test_a_page_is_delivered_within_the_critical_group_wait(
    production_alertmanager: str, listener: AlertListener
) -> None:
    """The critical route's group_wait is 5 s: a page arrives well within a minute. With the
    default route's 30 s or a mistaken 5 m it would not; 60 s discriminates 5 s from 5 m on
    any machine without timing how fast Alertmanager is (route_timings.yml pins the rest)."""
    # Starting now: Alertmanager flushes at once a new group whose alert started more than
    # group_wait ago, which would skip the wait this test is about.
    alert = _alert("ServiceDown", "gateway", ends_in=600, started_ago=0)
    with httpx.Client(base_url=production_alertmanager, trust_env=False) as client:
        assert client.post("/api/v2/alerts", json=[alert]).status_code == 200
    got = listener.wait_for(alertname="ServiceDown", status="firing", timeout=60)
    assert got.receiver == "critical"


def test_stopping_alertmanager_is_reported_by_the_dead_mans_switch(tmp_path: Path) -> None:
    """A real Alertmanager re-sends the Watchdog (repeat_interval shortened to 1 s); once it is
    stopped, the listener reports the silence, and reports again when a new one delivers."""
    reports: list[str] = []
    with AlertListener(watchdog_timeout=3, on_watchdog=reports.append) as listener:
        settings = MonitoringSettings(alerts_webhook_url=listener.url, data_dir=tmp_path)
        config = render_alertmanager(
            tmp_path / "config",
            settings,
            timings={"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1s"},
        )
        watchdog = _alert("Watchdog", "prometheus", ends_in=3600, started_ago=0)
        watchdog["labels"]["severity"] = "info"  # type: ignore[index]
        with _running_alertmanager(config, tmp_path) as url:
            with httpx.Client(base_url=url, trust_env=False) as client:
                assert client.post("/api/v2/alerts", json=[watchdog]).status_code == 200
            got = listener.wait_for(alertname="Watchdog", timeout=30)
            assert got.receiver == "deadmansswitch"
            # Re-sent while Alertmanager runs: a second delivery after the first.
            _wait_until(lambda: sum(n.alertname == "Watchdog" for n in listener) >= 2)
            assert not any("no Watchdog" in r for r in reports), reports
        # Alertmanager stopped (the context manager terminated it): the switch reports.
        _wait_until(lambda: any("no Watchdog from Alertmanager for" in r for r in reports))
        with _running_alertmanager(config, tmp_path / "again") as url:
            with httpx.Client(base_url=url, trust_env=False) as client:
                assert client.post("/api/v2/alerts", json=[watchdog]).status_code == 200
            _wait_until(lambda: any("arrives again" in r for r in reports))
    assert reports[0] == "dead man's switch armed: the Watchdog arrived"


def _wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met within the timeout")
        time.sleep(0.1)
