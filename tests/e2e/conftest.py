from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.live import free_port

ROOT = Path(__file__).resolve().parents[2]
AI_SUITE = str(Path(sys.executable).parent / "ai-suite")


def wait_http(url: str, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"process exited with {process.returncode} before {url} answered"
                )
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


def wait_for_line(process: subprocess.Popen[str], text: str, timeout: float) -> list[str]:
    """Read the process's stderr until a line contains ``text``; returns the lines read."""
    assert process.stderr is not None
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in process.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if text in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not found.wait(timeout):
        raise TimeoutError(f"no line with {text!r} within {timeout}s; got: {''.join(lines)}")
    return lines


@pytest.fixture(scope="module")
def stub_inference() -> Iterator[str]:
    """A stub OpenAI-compatible server in its own process; yields its /v1 base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.stubs.inference", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Platform:
    process: subprocess.Popen[str]
    gateway_url: str
    admin_key: str
    env: dict[str, str]
    cwd: Path
    urls: dict[str, str]  # service name -> base URL (gateway, mcp, rag, prometheus, ...)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AI_SUITE, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def start_platform(cwd: Path, env_extra: dict[str, str]) -> Platform:
    # The caller's platform variables are already gone (root conftest.py); .env files off.
    env = dict(os.environ)
    ports = {name: free_port() for name in ("gateway", "mcp", "rag", "prometheus", "alertmanager")}
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env["ALERTS_LISTEN_PORT"] = str(free_port())
    env.update(env_extra)
    port = ports["gateway"]
    cwd.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        # A generous timeout: CI machines are loaded, and the services import a lot.
        [AI_SUITE, "up", "--timeout", "180"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = f"http://127.0.0.1:{port}"
    urls = {name: f"http://127.0.0.1:{p}" for name, p in ports.items()}
    try:
        admin_key = process.stdout.readline().strip()  # printed once, alone on stdout
        if not admin_key.startswith("ais_"):
            raise RuntimeError(f"ai-suite up printed no key but {admin_key!r}")
        wait_for_line(process, "stop: Ctrl-C", timeout=240)  # every service is ready
    except BaseException as exc:
        process.kill()
        _, err = process.communicate(timeout=30)
        raise RuntimeError(f"ai-suite up did not start: {exc}\n{err}") from exc
    return Platform(process, url, admin_key, env, cwd, urls)


@contextmanager
def running_platform(cwd: Path, inference_url: str) -> Iterator[Platform]:
    with running_platform_env(cwd, {"INFERENCE_URL": inference_url}) as running:
        yield running


@contextmanager
def running_platform_env(cwd: Path, env_extra: dict[str, str]) -> Iterator[Platform]:
    """``ai-suite up`` with extra environment (settings under test), stopped after."""
    running = start_platform(cwd, env_extra)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
        running.process.communicate(timeout=30)  # also closes the pipes


@pytest.fixture
def platform(tmp_path: Path, stub_inference: str) -> Iterator[Platform]:
    """A fresh ``ai-suite up``, for tests that stop or break it."""
    with running_platform(tmp_path / "checkout", stub_inference) as running:
        yield running


@pytest.fixture(scope="module")
def shared_platform(
    tmp_path_factory: pytest.TempPathFactory, stub_inference: str
) -> Iterator[Platform]:
    """One ``ai-suite up`` for the tests of a module that only use it."""
    with running_platform(tmp_path_factory.mktemp("shared") / "checkout", stub_inference) as p:
        yield p
