"""The fairness limits are shared by every process of a service (issue 11: "the MCP rate
limit is per process"): real processes on one database file, no mocks.

The workers (tests/support/fairness_worker.py) use services/security/fairness.py as a
service process does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from services.security.fairness import Fairness, FairnessLimits, LimitExceeded, open_fairness_db
from tests.support.keys import make_key
from tests.support.live import free_port
from tests.support.processes import wait_until

REPO = Path(__file__).resolve().parents[2]
# The caller's settings must not leak into the service processes (a backend, limits).


class Workers:
    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "fairness.db"
        self.go = tmp_path / "go"
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, mode: str, *, rate: int, concurrent: int, tries: int) -> subprocess.Popen:
        argv = [str(self.db), mode, "user-1", str(rate), str(concurrent), str(tries)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fairness_worker", *argv, str(self.go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == {"ready": True}
        return proc

    def result(self, proc: subprocess.Popen) -> int:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, f"worker {proc.pid} ended without a result (exit {proc.poll()})"
        return int(json.loads(line)["passed"])


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path)
    yield pool
    for proc in pool.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


def test_two_processes_share_one_rate_limit(workers: Workers) -> None:
    # Before: each process had its own limiter, so two processes let 2 x the limit pass.
    procs = [workers.start("count", rate=50, concurrent=1, tries=100) for _ in range(2)]
    workers.go.touch()
    passed = [workers.result(proc) for proc in procs]
    assert sum(passed) == 50, passed


def test_two_processes_share_one_concurrency_limit(workers: Workers) -> None:
    procs = [workers.start("hold", rate=10_000, concurrent=5, tries=20) for _ in range(2)]
    workers.go.touch()
    held = [workers.result(proc) for proc in procs]
    assert sum(held) == 5, held


def test_leases_of_a_killed_process_are_reclaimed(workers: Workers) -> None:
    holder = workers.start("hold", rate=10_000, concurrent=3, tries=3)
    workers.go.touch()
    assert workers.result(holder) == 3
    db = open_fairness_db(workers.db)
    try:
        limits = FairnessLimits(10_000, 3, "RATE", "CONCURRENT")
        # Leases for an hour: only the holder's death can free them this soon.
        fairness = Fairness(db, "svc", limits, lease_ttl=3600)
        with pytest.raises(LimitExceeded) as refused:
            fairness.admit_sync("user-1")
        assert refused.value.limit == "concurrency"
        os.kill(holder.pid, signal.SIGKILL)
        # Not reaped yet: a zombie holds nothing either.
        process = psutil.Process(holder.pid)
        for _ in range(1000):
            if process.status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.01)
        assert process.status() == psutil.STATUS_ZOMBIE
        leases = [fairness.admit_sync("user-1") for _ in range(3)]
        assert fairness.in_flight("user-1") == 3
        with pytest.raises(LimitExceeded):
            fairness.admit_sync("user-1")
        for lease in leases:
            fairness.release_sync(lease)
    finally:
        db.close()


def test_two_gateway_processes_share_one_rate_limit(tmp_path: Path) -> None:
    # Two real gateway processes on one data directory, as two workers or replicas of the
    # service would run. 2 requests a minute: no token comes back during the test.
    data = tmp_path / "data"
    key = make_key(data / "security.db", "viewer-user", "viewer")
    procs, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            env = {
                # the caller's settings are gone already (root conftest.py), .env files off
                **os.environ,
                "AI_SUITE_DATA_DIR": str(data),
                "AI_SUITE_HOST": "127.0.0.1",
                "GATEWAY_PORT": str(port),
                "GATEWAY_RATE_LIMIT_PER_MINUTE": "2",
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.gateway"],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            assert wait_until(lambda url=url: _healthy(url), timeout=60), f"{url} did not start"
        headers = {"Authorization": f"Bearer {key}"}
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(trust_env=False, timeout=30) as client:
            statuses = [
                client.post(
                    f"{urls[i % 2]}/v1/chat/completions", json=body, headers=headers
                ).status_code
                for i in range(6)
            ]
        # No backend is configured: an admitted request is 503, a refused one 429.
        assert statuses == [503, 503, 429, 429, 429, 429], statuses
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
