"""Child-process supervision for ``ai-suite up`` (and, later, the local stack backend).

Guarantees: every child runs in its own process group and receives SIGKILL if
the supervisor dies (Linux ``PR_SET_PDEATHSIG``), so even ``kill -9`` of the
supervisor leaves no service running; a child that exits during start-up is
reported at once with its exit code and last log lines; stopping sends SIGTERM
to each whole process group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from services.core.files import PRIVATE_UMASK, open_private_append, private_dir

_PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child: dlopen() after fork() can deadlock when
# another thread held the loader lock at fork time.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent(parent_pid: int) -> None:  # pragma: no cover - runs in the child
    # The services write the security database, indexes and caches into the data
    # directory: whatever they create is for our user only (files 0600, dirs 0700).
    os.umask(PRIVATE_UMASK)
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent_pid:
            # The supervisor died between fork() and prctl(): no signal will come.
            os._exit(1)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: Sequence[str]
    port: int
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/ready"
    start_timeout: float = 30.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ServiceFailed(RuntimeError):
    def __init__(self, name: str, message: str, log_tail: list[str]) -> None:
        tail = "\n".join(f"    {line}" for line in log_tail) or "    (no output)"
        super().__init__(f"{name}: {message}\n  last log lines:\n{tail}")
        self.name = name
        self.log_tail = log_tail


@dataclass
class Running:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 20) -> list[str]:
        try:
            with self.log_path.open("r", encoding="utf-8", errors="replace") as fh:
                return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]
        except FileNotFoundError:
            return []


def port_in_use(host: str, port: int) -> str | None:
    """Describe who listens on ``host:port``, or None if the port is free."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            pass
        else:
            return None
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            listening = conn.laddr and conn.status == psutil.CONN_LISTEN
            if listening and conn.laddr.port == port and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline()[:4])})"
    return "another process"


class Supervisor:
    def __init__(self, log_dir: Path, *, echo: Callable[[str], None] | None = None) -> None:
        self.log_dir = log_dir
        self.running: list[Running] = []
        self.echo = echo or (lambda _msg: None)

    def start(self, spec: ServiceSpec) -> Running:
        busy = port_in_use(spec.host, spec.port)
        if busy:
            raise ServiceFailed(
                spec.name,
                f"port {spec.port} on {spec.host} is already in use by {busy}; stop it or choose"
                f" another port ({spec.name.upper()}_PORT)",
                [],
            )
        private_dir(self.log_dir)
        log_path = self.log_dir / f"{spec.name}.log"
        env = {**os.environ, **spec.env}
        with os.fdopen(open_private_append(log_path), "ab") as log_file:
            process = subprocess.Popen(  # noqa: S603 - argv built by us, never a shell
                list(spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: signals reach grandchildren
                preexec_fn=functools.partial(_die_with_parent, os.getpid()),
            )
        running = Running(spec, process, log_path)
        self.running.append(running)
        return running

    def wait_ready(self, running: Running, *, poll: float = 0.1) -> float:
        """Seconds until ready; raises ServiceFailed if the child exits or times out."""
        spec = running.spec
        started = time.monotonic()
        deadline = started + spec.start_timeout
        last_error = "no answer yet"
        # trust_env=False: an HTTP(S)_PROXY set for the user's browser must not
        # route probes of our own loopback services through that proxy.
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                code = running.process.poll()
                if code is not None:
                    raise ServiceFailed(
                        spec.name, f"exited during start-up with code {code}", running.log_tail()
                    )
                try:
                    response = client.get(spec.url + spec.ready_path)
                    if response.status_code == 200:
                        return time.monotonic() - started
                    last_error = f"{spec.ready_path} answered {response.status_code}: "
                    last_error += response.text[:200]
                except httpx.HTTPError as exc:
                    last_error = f"{type(exc).__name__}"
                time.sleep(poll)
        raise ServiceFailed(
            spec.name,
            f"not ready after {spec.start_timeout:g}s (last probe: {last_error})",
            running.log_tail(),
        )

    def exited(self) -> list[Running]:
        return [r for r in self.running if r.process.poll() is not None]

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM every process group, wait up to ``grace`` seconds, then SIGKILL."""
        for running in reversed(self.running):
            _signal_group(running.process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for running in reversed(self.running):
            remaining = max(0.0, deadline - time.monotonic())
            try:
                running.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                self.echo(f"{running.spec.name} did not stop in {grace:g}s; killing it")
        for running in self.running:
            # Kill whatever is left of each group, grandchildren included.
            _signal_group(running.process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                running.process.wait(timeout=5)
        self.running.clear()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
