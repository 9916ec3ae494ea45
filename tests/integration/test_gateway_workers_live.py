"""GATEWAY_WORKERS: real worker processes on one port, and a /metrics that counts every
request whichever worker served it and whichever worker answers the scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.stubs.inference import create_stub_app
from tests.support.keys import make_key
from tests.support.live import free_port, serve_in_thread
from tests.support.processes import assert_all_gone, wait_until

REPO = Path(__file__).resolve().parents[2]
# The caller's settings must not leak into the service processes (a backend, limits).
SETTINGS_PREFIXES = ("AI_SUITE_", "GATEWAY_", "INFERENCE_", "MODEL_", "UPSTREAM_", "BREAKER_")
SETTINGS_PREFIXES += ("PROMETHEUS_MULTIPROC_DIR",)
REQUESTS = 24


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def stub() -> Iterator[str]:
    with serve_in_thread(create_stub_app(accept_any_model=True)) as url:
        yield f"{url}/v1"


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_two_workers_serve_one_port_and_metrics_sum_over_both(tmp_path: Path, stub: str) -> None:
    data = tmp_path / "data"
    key = make_key(data / "security.db", "viewer-user", "viewer")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)},
        "AI_SUITE_DATA_DIR": str(data),
        "AI_SUITE_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_WORKERS": "2",
        "INFERENCE_URL": stub,
        "INFERENCE_CHAT_MODEL": "stub-model:latest",
    }
    gateway = subprocess.Popen(
        [sys.executable, "-m", "services.gateway"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    workers: list[int] = []
    try:
        assert wait_until(lambda: _healthy(url), timeout=60), "the gateway did not start"
        workers = [
            child.pid
            for child in psutil.Process(gateway.pid).children()
            if "spawn" in " ".join(child.cmdline()) and "resource_tracker" not in child.cmdline()
        ]
        headers = {"Authorization": f"Bearer {key}"}
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(REQUESTS):  # a new connection each: the kernel spreads them
            answer = httpx.post(
                f"{url}/v1/chat/completions", json=body, headers=headers, trust_env=False
            )
            assert answer.status_code == 200, answer.text
        scrapes = [httpx.get(f"{url}/metrics", trust_env=False).text for _ in range(4)]
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
    assert_all_gone(workers)
    assert len(workers) == 2
    for text in scrapes:
        chat = [
            value
            for labels, value in samples(text, "llm_requests_total")
            if labels["model"] == "chat" and labels["status"] == "200"
        ]
        assert chat == [REQUESTS]
        routes = [
            value
            for labels, value in samples(text, "http_requests_total")
            if labels["route"] == "/v1/chat/completions"
        ]
        assert routes == [REQUESTS]
        # A gauge is per process: one sample per worker, labelled with its pid.
        pids = {labels["pid"] for labels, _ in samples(text, "llm_circuit_breaker_state")}
        assert pids == {str(pid) for pid in workers}
