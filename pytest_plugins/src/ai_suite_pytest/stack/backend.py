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

from ai_suite_pytest.stack.readiness import Probe, Target
from ai_suite_pytest.stack.spec import ServiceSpec, StackSpec, render, url_of
from ai_suite_pytest.stack.state import StackState


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


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


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
        """Give every service with a port one, kept in the state across restarts.

        ``auto``: a free port; a pinned port: that one, if free; a range: its first free
        port not already given to another service of the stack. A busy pinned port or a
        full range is a :class:`ServiceStartError` saying which and what to change.
        """
        taken = set(self.state.ports.values())
        for service in self.spec.services:
            if not service.has_port or service.name in self.state.ports:
                continue
            port = self._choose_port(service, taken)
            self.state.ports[service.name] = port
            taken.add(port)

    def _choose_port(self, service: ServiceSpec, taken: set[int]) -> int:
        candidates = service.port_candidates()
        if candidates is None:
            return free_port(self._bind_host(service))
        for port in candidates:
            if port not in taken and port_is_free(self._bind_host(service), port):
                return port
        where = f"services.{service.name}.port"
        if len(candidates) == 1:
            raise ServiceStartError(
                f"{where}: port {candidates[0]} (pinned) is in use on {service.host};"
                " stop what listens there, or give a range or `auto`"
            )
        raise ServiceStartError(
            f"{where}: no free port in {service.port} on {service.host}: all"
            f" {len(candidates)} are in use or taken by other services of the stack;"
            " widen the range or use `auto`"
        )

    def _bind_host(self, service: ServiceSpec) -> str:
        # Compose publishes on the host's loopback whatever the container listens on.
        return service.host if self.name == "local" else "127.0.0.1"

    def port(self, name: str) -> int:
        service = self.spec.service(name)
        if not service.has_port:
            raise ValueError(f"service {name!r} has `port: none`: it has no port or URL")
        return int(self.state.ports[name])

    def url(self, name: str) -> str:
        return url_of(self.spec.service(name), self.port(name))

    def context(self, service: ServiceSpec) -> dict[str, str]:
        """What the placeholders of ``service``'s values are filled with."""
        context = {
            "root": str(self.spec.root),
            "data_dir": str(self.data_dir),
            "host": service.host,
        }
        if service.name in self.state.ports:
            context["port"] = str(self.state.ports[service.name])
        for other, port in self.state.ports.items():
            context[f"port:{other}"] = str(port)
            context[f"url:{other}"] = url_of(self.spec.service(other), port)
        return context

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

    def mark_log(self, name: str) -> None:
        """Note where ``name``'s log ends before it starts: its ``log`` readiness check
        reads only what this start writes."""
        path = self.log_path(name)
        self.state.log_marks[name] = path.stat().st_size if path.exists() else 0

    def log_since_start(self, name: str) -> str:
        self.sync_logs()
        path = self.log_path(name)
        if not path.exists():
            return ""
        with path.open("rb") as fh:
            fh.seek(self.state.log_marks.get(name, 0))
            return fh.read().decode("utf-8", errors="replace")

    def probe(self, name: str) -> Probe:
        service = self.spec.service(name)
        context = self.context(service)
        return Probe(
            service.ready,
            Target(
                host=service.host,
                port=self.state.ports.get(name),
                scheme=service.scheme,
                argv=[render(part, context=context) for part in service.ready.command],
                cwd=self.spec.cwd,
                read_log=lambda: self.log_since_start(name),
            ),
        )

    def wait_ready(self, name: str, timeout: float | None = None) -> float:
        """Seconds until ``name`` passes its readiness check.

        Raises :class:`ServiceStartError` as soon as the service is found dead, or
        after ``timeout`` (default: the service's own) saying which check, what it saw
        last and how long it waited.
        """
        service = self.spec.service(name)
        timeout = service.ready.timeout if timeout is None else timeout
        probe = self.probe(name)
        # A log check on compose costs a `docker compose logs`: not ten times a second.
        interval = self.liveness_interval if service.ready.kind == "log" else 0.0
        interval = max(self.probe_interval, interval)
        started = time.monotonic()
        last = "nothing yet"
        next_liveness_check = 0.0
        while True:
            if time.monotonic() >= next_liveness_check:
                self._raise_if_dead(service)
                next_liveness_check = time.monotonic() + self.liveness_interval
            seen = probe.check()
            if seen is None:
                return time.monotonic() - started
            last = seen
            if time.monotonic() - started >= timeout:
                break
            time.sleep(interval)
        waited = time.monotonic() - started
        raise ServiceStartError(
            f"{name} was not ready within {timeout:g}s: the {service.ready.describe()}"
            f" last saw {last} (waited {waited:.1f}s);"
            f" {self._not_ready_details(service)}"
        )

    def is_alive(self, name: str) -> bool:
        """Whether ``name`` is running (not stopped, killed or exited); cheap on local."""
        try:
            self._raise_if_dead(self.spec.service(name))
        except ServiceStartError:
            return False
        return True

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

    def _set_paused(self, name: str, paused: bool) -> None:
        names = set(self.state.paused)
        self.state.paused = sorted(names | {name} if paused else names - {name})
        self.state.save(self.state_file)
