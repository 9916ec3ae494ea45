"""What every stack backend shares: addresses, files, the readiness wait (pytest-free).

A backend runs the stack's services somewhere (child processes, containers) and
records them in the shared :class:`~ai_suite_pytest.stack.state.StackState`. The
parts that do not depend on *where* live here: free loopback ports kept in the
state (so a service's URL survives restarts), the per-stack data directory and
log files, and the readiness loop. Subclasses say how services start and stop,
and how to tell that one died while it was being waited for.
"""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from collections import deque
from pathlib import Path

import httpx

from ai_suite_pytest.stack.spec import ServiceSpec, StackSpec
from ai_suite_pytest.stack.state import StackState


def probe_client() -> httpx.Client:
    """The HTTP client for readiness probes; one per wait, not one per probe (each new
    client loads the CA bundle, ~25 ms). trust_env=False: a proxy set for the user's
    browser must not see probes of loopback services."""
    return httpx.Client(timeout=1.0, trust_env=False)


class ServiceStartError(RuntimeError):
    """A service died or never became ready; the message has its exit code and log tail."""


class ServiceUnavailable(LookupError):
    """An optional service is not running; ``reason`` says why (exit code, log tail)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 20) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]
    except FileNotFoundError:
        return []


class StackBackend(ABC):
    name: str
    # Seconds between readiness probes, and the least time between two checks that the
    # service is still alive (that check may cost a `docker` call).
    probe_interval: float = 0.05
    liveness_interval: float = 0.0

    def __init__(self, spec: StackSpec, run_dir: Path, state: StackState, state_file: Path):
        self.spec = spec
        self.run_dir = run_dir
        self.state = state
        self.state_file = state_file

    # -- addresses and files -----------------------------------------------

    def assign_ports(self) -> None:
        for service in self.spec.services:
            self.state.ports.setdefault(service.name, free_port())

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.state.ports[name]}"

    @property
    def data_dir(self) -> Path:
        """One data directory shared by the stack's services (``{data_dir}``)."""
        return self.run_dir / "data"

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def log_tail(self, name: str) -> str:
        """The last lines of ``name``'s log, indented for an error message."""
        lines = "\n".join(f"    {line}" for line in tail(self.log_path(name)))
        return lines or "    (none)"

    @abstractmethod
    def sync_logs(self) -> None:
        """Bring the files at :meth:`log_path` up to date with what the services wrote."""

    # -- optional services ---------------------------------------------------

    def unavailable_reason(self, name: str) -> str | None:
        """Why optional service ``name`` is not running, or None if it is not unavailable."""
        return self.state.unavailable.get(name)

    def mark_unavailable(self, name: str, reason: str) -> None:
        self.state.unavailable[name] = reason
        self.state.save(self.state_file)

    def blocked_by(self, service: ServiceSpec) -> str | None:
        """The reason ``service`` cannot start: a dependency is unavailable."""
        for dep in service.depends_on:
            reason = self.state.unavailable.get(dep)
            if reason is not None:
                return f"{service.name} depends on {dep}, which is unavailable: {reason}"
        return None

    # -- readiness ---------------------------------------------------------

    def wait_ready(self, name: str, timeout: float | None = None) -> float:
        """Seconds until ``name`` answers its readiness probe with 200.

        Raises :class:`ServiceStartError` as soon as the service is found dead, or
        after ``timeout`` (default: the service's own) with the last probe result.
        """
        service = self.spec.service(name)
        timeout = service.ready.timeout if timeout is None else timeout
        url = self.url(name) + service.ready.http
        started = time.monotonic()
        last = "no answer yet"
        next_liveness_check = 0.0
        with probe_client() as client:
            while time.monotonic() - started < timeout:
                if time.monotonic() >= next_liveness_check:
                    self._raise_if_dead(service)
                    next_liveness_check = time.monotonic() + self.liveness_interval
                try:
                    response = client.get(url)
                    if response.status_code == 200:
                        return time.monotonic() - started
                    last = f"{service.ready.http} answered {response.status_code}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                time.sleep(self.probe_interval)
        raise ServiceStartError(
            f"{name} was not ready within {timeout:g}s (last probe: {last});"
            f" {self._not_ready_details(service)}"
        )

    @abstractmethod
    def _raise_if_dead(self, service: ServiceSpec) -> None:
        """Raise :class:`ServiceStartError` (exit code, log tail) if ``service`` stopped."""

    @abstractmethod
    def _not_ready_details(self, service: ServiceSpec) -> str:
        """What to add to the error when ``service`` is alive but never became ready."""

    # -- lifecycle and fault injection ---------------------------------------

    @abstractmethod
    def start_all(self, only: list[str] | None = None) -> None:
        """Start the services of ``only`` (default: all) and their dependencies."""

    @abstractmethod
    def start(self, name: str) -> None: ...

    @abstractmethod
    def stop(self, name: str, grace: float = 10.0) -> None: ...

    @abstractmethod
    def kill(self, name: str) -> None: ...

    @abstractmethod
    def pause(self, name: str) -> None: ...

    @abstractmethod
    def resume(self, name: str) -> None: ...

    @abstractmethod
    def stop_all(self) -> None:
        """Stop everything this stack started, including what the spec no longer names."""

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)
