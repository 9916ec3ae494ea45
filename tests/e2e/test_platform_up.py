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
from pathlib import Path

import httpx
import openai
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Platform, running_platform_env, wait_for_line
from tests.support.processes import wait_until


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


def status_json(platform: Platform) -> tuple[int, dict[str, dict]]:
    result = platform.cli("status", "--json")
    document = json.loads(result.stdout)
    return result.returncode, {s["name"]: s for s in document["services"]}


def service_processes(platform: Platform) -> dict[str, psutil.Process]:
    """The platform's Python services by name (``python -m services.<name>``)."""
    found = {}
    for process in children_of(platform.process.pid):
        for name in ("gateway", "mcp", "rag"):
            if f"services.{name}" in process.cmdline():
                found[name] = process
    assert sorted(found) == ["gateway", "mcp", "rag"]
    return found


def restarts_metric(platform: Platform) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{platform.gateway_url}/metrics").text
    return {
        (sample.labels["service"], sample.labels["reason"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ai_suite_service_restarts_total"
    }


def test_kill_9_of_one_service_restarts_it_and_no_other(platform: Platform) -> None:
    before = service_processes(platform)
    code, services = status_json(platform)
    assert code == 0
    assert [services[name]["restarts"] for name in ("rag", "mcp", "gateway")] == [0, 0, 0]

    before["rag"].kill()
    wait_for_line(platform.process, "rag is ready again", timeout=120)

    after = service_processes(platform)
    assert after["rag"].pid != before["rag"].pid
    for name in ("mcp", "gateway"):  # never stopped: the same processes
        assert after[name].pid == before[name].pid
        assert after[name].create_time() == before[name].create_time()
    code, services = status_json(platform)
    assert code == 0
    assert services["rag"]["state"] == "ready"
    assert services["rag"]["pid"] == after["rag"].pid
    assert services["rag"]["restarts"] == 1
    assert services["mcp"]["restarts"] == services["gateway"]["restarts"] == 0
    assert restarts_metric(platform)[("rag", "crash")] == 1
    assert restarts_metric(platform)[("rag", "requested")] == 0

    # `ai-suite restart` restarts one service on request; the others keep running.
    restarted = platform.cli("restart", "mcp")
    assert restarted.returncode == 0, restarted.stderr
    assert "mcp is ready again" in restarted.stderr
    again = service_processes(platform)
    assert again["mcp"].pid != after["mcp"].pid
    assert (again["rag"].pid, again["gateway"].pid) == (after["rag"].pid, after["gateway"].pid)
    _, services = status_json(platform)
    assert services["mcp"]["restarts"] == 1
    assert restarts_metric(platform)[("mcp", "requested")] == 1

    unknown = platform.cli("restart", "ragg")
    assert unknown.returncode == 1
    assert "unknown service 'ragg'" in unknown.stderr
    assert "rag, mcp, gateway" in unknown.stderr

    platform.process.send_signal(signal.SIGTERM)
    assert platform.process.wait(timeout=30) == 0  # everything was running at the end
    not_running = platform.cli("restart", "rag")
    assert not_running.returncode == 1
    assert "the platform is not running" in not_running.stderr


def test_service_that_crashes_at_start_gives_up_and_status_says_why(
    tmp_path: Path, stub_inference: str
) -> None:
    not_a_directory = tmp_path / "qdrant-is-a-file"
    not_a_directory.write_text("")
    env = {
        "INFERENCE_URL": stub_inference,
        # A bad per-service setting: the RAG service cannot open its store and exits.
        "QDRANT_PATH": str(not_a_directory),
        "AI_SUITE_RESTART_LIMIT": "2",
        "AI_SUITE_RESTART_BACKOFF": "0.1",
        # Prometheus (where installed) scrapes and evaluates every second, `for` <= 2s.
        "MONITORING_SCRAPE_INTERVAL": "1s",
        "MONITORING_EVALUATION_INTERVAL": "1s",
        "MONITORING_FOR_LIMIT": "2s",
    }
    with running_platform_env(tmp_path / "checkout", env) as platform:
        code, services = status_json(platform)
        assert code == 1
        rag = services["rag"]
        assert rag["state"] == "failed"
        assert rag["restarts"] == 2  # the limit: three starts, then no more
        assert "exited during start-up (code 1)" in rag["detail"]
        assert "gave up after 2 restarts within 60s" in rag["detail"]
        assert rag["pid"] is None
        assert services["gateway"]["state"] == "ready"
        assert services["mcp"]["state"] == "ready"
        table = platform.cli("status").stdout
        (row,) = [line for line in table.splitlines() if line.startswith("rag ")]
        assert "failed" in row
        assert "gave up after 2 restarts" in row

        prometheus = services["prometheus"]
        if prometheus["state"] == "absent":
            pytest.skip("Prometheus is not installed: ServiceDown not checked (make system-deps)")
        assert wait_until(
            lambda: any(
                alert["labels"].get("alertname") == "ServiceDown"
                and alert["labels"].get("service") == "rag"
                and alert["state"] == "firing"
                for alert in httpx.get(f"{prometheus['url']}/api/v1/alerts").json()["data"][
                    "alerts"
                ]
            ),
            timeout=60,
        ), "ServiceDown did not fire for the given-up rag service"


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
