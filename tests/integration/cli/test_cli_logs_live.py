"""``ai-suite logs`` against real writers: ``-f`` in a subprocess following a file that grows,
rotates, is truncated, and a service's file that appears later; and the log of a real
gateway process started by the supervisor, read back by request id."""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from services.cli.platform import platform_services
from services.core.context import request_id_var
from services.core.logging import JsonFormatter
from services.core.settings import CoreSettings
from services.core.supervisor import Supervisor
from tests.support.live import free_port
from tests.support.processes import wait_until

Run = Callable[..., Result]
REPO = Path(__file__).resolve().parents[3]
WAIT = 60.0  # only a broken follower waits this long


def _writer(path: Path, service: str) -> logging.Logger:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter(service))
    logger = logging.Logger(f"live.{service}.{path.name}")
    logger.addHandler(handler)
    return logger


def _close(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        handler.close()


class Follow:
    """``ai-suite logs -f --json`` in a subprocess; its lines through a queue."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        env = {**os.environ, "AI_SUITE_DATA_DIR": str(data_dir)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.cli.main",
                "logs",
                "-f",
                "--json",
                "--poll",
                "0.05",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[str] = queue.Queue()
        self.pumps = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.lines)),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.errors)),
        ]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(stream, into: queue.Queue[str]) -> None:
        for line in stream:
            into.put(line)

    def next_messages(self, count: int) -> list[str]:
        out = []
        for _ in range(count):
            try:
                out.append(json.loads(self.lines.get(timeout=WAIT))["message"])
            except queue.Empty:
                raise AssertionError(f"only {out} of {count} lines came") from None
        return out

    def next_error(self) -> str:
        try:
            return self.errors.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("nothing on stderr") from None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        for pump in self.pumps:
            pump.join(timeout=30)  # the pipes end with the process
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def logs_dir(data_dir: Path) -> Path:
    path = data_dir / "logs"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def follow(data_dir: Path) -> Iterator[Callable[..., Follow]]:
    started: list[Follow] = []

    def start(*args: str) -> Follow:
        started.append(Follow(data_dir, *args))
        return started[-1]

    yield start
    for follower in started:
        follower.stop()


def test_follow_goes_on_across_rotation_truncation_and_new_files(
    logs_dir: Path, follow: Callable[..., Follow]
) -> None:
    gateway = _writer(logs_dir / "gateway.log", "gateway")
    for i in range(12):
        gateway.info("history %d", i)
    follower = follow()
    # The last 10 lines first, then what is written while it follows.
    assert follower.next_messages(10) == [f"history {i}" for i in range(2, 12)]
    gateway.info("live 1")
    assert follower.next_messages(1) == ["live 1"]

    # Rotation as RotatingFileHandler does it: rename, then a new file.
    (logs_dir / "gateway.log").rename(logs_dir / "gateway.log.1")
    gateway.info("written to the old file after the rename")
    _close(gateway)
    gateway = _writer(logs_dir / "gateway.log", "gateway")
    gateway.info("first line of the new file")
    assert follower.next_messages(2) == [
        "written to the old file after the rename",
        "first line of the new file",
    ]

    # Truncated in place (copytruncate): read again from the start.
    _close(gateway)
    (logs_dir / "gateway.log").write_text("")
    gateway = _writer(logs_dir / "gateway.log", "gateway")
    gateway.info("after truncation")
    assert follower.next_messages(1) == ["after truncation"]

    # A service whose file did not exist when following started.
    rag = _writer(logs_dir / "rag.log", "rag")
    rag.warning("rag started later")
    assert follower.next_messages(1) == ["rag started later"]
    _close(gateway)
    _close(rag)


def test_follow_before_any_log_waits_and_says_where(
    data_dir: Path, follow: Callable[..., Follow]
) -> None:
    follower = follow("gateway")
    notice = follower.next_error()
    assert f"no logs of gateway yet in {data_dir / 'logs'}" in notice
    assert "ai-suite up" in notice
    (data_dir / "logs").mkdir(parents=True)
    gateway = _writer(data_dir / "logs" / "gateway.log", "gateway")
    gateway.info("the platform started")
    assert follower.next_messages(1) == ["the platform started"]
    _close(gateway)


def test_level_and_request_id_filters_apply_while_following(
    logs_dir: Path, follow: Callable[..., Follow]
) -> None:
    gateway = _writer(logs_dir / "gateway.log", "gateway")
    follower = follow("--level", "warning", "--request-id", "req-7")
    for level, request in (
        (logging.INFO, "req-7"),
        (logging.WARNING, "req-8"),
        (logging.WARNING, "req-7"),
    ):
        token = request_id_var.set(request)
        gateway.log(level, "%s %s", logging.getLevelName(level), request)
        request_id_var.reset(token)
    gateway.error("the end", extra={"request_id": "req-7"})
    assert follower.next_messages(2) == ["WARNING req-7", "the end"]
    _close(gateway)


def test_a_real_gateway_s_log_read_back_by_request_id(
    data_dir: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("GATEWAY_PORT", str(port))
    monkeypatch.setenv("RAG_PORT", str(free_port()))
    monkeypatch.setenv("MCP_PORT", str(free_port()))
    settings = CoreSettings()
    (spec,) = [s for s in platform_services(settings) if s.name == "gateway"]
    supervisor = Supervisor(data_dir / "logs")
    try:
        supervisor.wait_ready(supervisor.start(spec))
        response = httpx.get(
            f"{spec.url}/v1/models", headers={"X-Request-ID": "logs-live-1"}, trust_env=False
        )
        assert response.status_code == 401

        def access_line() -> list[dict]:
            result = run("logs", "gateway", "--request-id", "logs-live-1", "--json")
            assert result.exit_code == 0, result.output
            return [json.loads(line) for line in result.stdout.splitlines()]

        assert wait_until(lambda: bool(access_line()), timeout=WAIT)
        (entry,) = access_line()
        assert entry["service"] == "gateway"
        assert entry["status"] == 401
        assert entry["route"] == "/v1/models"
    finally:
        supervisor.stop_all()
