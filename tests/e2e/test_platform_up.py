"""``ai-suite up`` end to end: start, use with real clients, stop, leave nothing behind."""

from __future__ import annotations

import json
import random
import shutil
import signal
import stat
import string
import subprocess
import time

import httpx
import openai
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Platform, wait_for_line


def children_of(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def series_count(metrics_text: str) -> int:
    return sum(len(f.samples) for f in text_string_to_metric_families(metrics_text))


def test_health_models_and_chat_with_a_created_key(shared_platform: Platform) -> None:
    platform = shared_platform
    assert httpx.get(f"{platform.gateway_url}/health").json()["status"] == "ok"
    created = platform.cli("keys", "create", "--user", "alice", "--role", "developer")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ais_")
    assert "\n" not in key
    client = openai.OpenAI(base_url=f"{platform.gateway_url}/v1", api_key=key, max_retries=0)
    assert {"auto", "chat", "code"} <= {m.id for m in client.models.list()}
    reply = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "ping"}]
    )
    assert "ping" in (reply.choices[0].message.content or "")
    streamed = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "stream please"}], stream=True
    )
    assert "stream please" in "".join(
        c.choices[0].delta.content or "" for c in streamed if c.choices
    )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=f"{platform.gateway_url}/v1", api_key="wrong", max_retries=0
        ).models.list()


def test_status_reports_ready(shared_platform: Platform) -> None:
    platform = shared_platform
    result = platform.cli("status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gateway" in result.stdout
    assert "ready" in result.stdout


def test_random_paths_add_no_metric_series(shared_platform: Platform) -> None:
    platform = shared_platform
    url = platform.gateway_url
    with httpx.Client() as client:
        client.get(f"{url}/no-such-page")  # the one shared <unmatched> series
        before = series_count(client.get(f"{url}/metrics").text)
        rng = random.Random(1)
        for _ in range(1000):
            path = "".join(rng.choices(string.ascii_letters + string.digits, k=12))
            assert client.get(f"{url}/{path}").status_code == 404
        after_text = client.get(f"{url}/metrics").text
    after = [
        s
        for f in text_string_to_metric_families(after_text)
        for s in f.samples
        if s.name.startswith("http_request") and "route" in s.labels
    ]
    assert series_count(after_text) == before
    assert {s.labels.get("route") for s in after} <= {
        "<unmatched>",
        "/v1/models",
        "/v1/chat/completions",
    }


def test_metrics_pass_promtool(shared_platform: Platform) -> None:
    platform = shared_platform
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (make system-deps installs Debian's prometheus)")
    key = platform.admin_key
    httpx.get(f"{platform.gateway_url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    text = httpx.get(f"{platform.gateway_url}/metrics").text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""


def test_sigterm_stops_every_service(platform: Platform) -> None:
    children = children_of(platform.process.pid)
    assert children, "ai-suite up should have started the gateway"
    platform.process.send_signal(signal.SIGTERM)
    assert platform.process.wait(timeout=30) == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_kill_9_of_up_takes_services_down(platform: Platform) -> None:
    children = children_of(platform.process.pid)
    platform.process.kill()
    platform.process.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_crashed_service_is_reported_and_the_others_keep_running(platform: Platform) -> None:
    (rag,) = [p for p in children_of(platform.process.pid) if "services.rag" in p.cmdline()]
    rag.kill()
    lines = wait_for_line(platform.process, "rag: exited unexpectedly", timeout=30)
    assert lines
    # The gateway (and Prometheus, to alert on it) still answer; status names the dead one.
    assert httpx.get(f"{platform.gateway_url}/health").status_code == 200
    status = platform.cli("status")
    assert status.returncode == 1
    assert any(
        line.split()[:1] == ["rag"] and "down" in line for line in status.stdout.splitlines()
    )
    platform.process.send_signal(signal.SIGTERM)
    assert platform.process.wait(timeout=30) == 1  # a service failed during the run
    stderr = platform.process.stderr.read() if platform.process.stderr else ""
    assert "all services stopped" in stderr


def test_nothing_written_outside_the_data_directory(platform: Platform) -> None:
    platform.cli("keys", "create", "--user", "carol", "--role", "viewer")
    platform.process.send_signal(signal.SIGTERM)
    platform.process.wait(timeout=30)
    time.sleep(0.1)
    assert sorted(p.name for p in platform.cwd.iterdir()) == ["data"]
    assert (platform.cwd / "data" / "security.db").exists()


def test_logs_are_json_lines_without_secrets(shared_platform: Platform) -> None:
    platform = shared_platform
    key = platform.admin_key
    response = httpx.get(
        f"{platform.gateway_url}/v1/models",
        headers={"Authorization": f"Bearer {key}", "X-Request-ID": "e2e-trace-1"},
    )
    assert response.headers["X-Request-ID"] == "e2e-trace-1"
    log_file = platform.cwd / "data" / "logs" / "gateway.log"
    deadline = time.monotonic() + 10
    while "e2e-trace-1" not in log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    assert lines, "the gateway wrote no log lines"
    for entry in lines:
        assert {"time", "level", "service", "logger", "message", "request_id"} <= entry.keys()
        assert entry["service"] == "gateway"
    (access,) = [e for e in lines if e["request_id"] == "e2e-trace-1"]
    assert access["route"] == "/v1/models"
    assert access["status"] == 200
    assert access["user"] == "admin"
    assert "duration_ms" in access
    assert key not in log_file.read_text()


def test_data_directory_database_and_logs_are_private(shared_platform: Platform) -> None:
    """docs/security.md: the data directory 0700, security.db (+ -wal/-shm) and logs 0600."""
    data = shared_platform.cwd / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    private = [data / "security.db", *(data / "logs").glob("*.log")]
    private += [p for p in (data / "security.db-wal", data / "security.db-shm") if p.exists()]
    assert len(private) > 3
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((data / "logs").stat().st_mode) == 0o700
