"""Child-process supervision for ``ai-suite up`` (and Prometheus/Alertmanager with it).

The mechanism (spawn in a process group, die-with-parent, probes, group stop, restart
policy) is ``ai_suite_procs`` (procs/), which the stack plugin's local backend uses too;
this module adds the platform's side: private logs, port checks, restarts, state.

Guarantees: every child runs in its own process group and receives SIGKILL if
the supervisor dies (Linux ``PR_SET_PDEATHSIG``), so even ``kill -9`` of the
supervisor leaves no service running; a child that exits during start-up is
reported at once with its exit code and last log lines; stopping sends SIGTERM
to each whole process group, then SIGKILL after a grace period.

Restarts (:meth:`Supervisor.launch` + :meth:`Supervisor.tick`): a service that exits
is restarted after an exponential backoff, and awaited with the same readiness probe
as at start; more than ``RestartPolicy.max_restarts`` restarts within
``RestartPolicy.window`` seconds is a crash loop: the supervisor gives up on that
service (state ``failed`` with the reason) and keeps the others running. ``tick`` never
blocks on one service, so a restart never holds up the others.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import psutil
from ai_suite_procs.groups import Group, signal_group, spawn, stop_groups
from ai_suite_procs.probes import http_probe
from ai_suite_procs.restart import NEVER_RESTART, RestartPolicy

from services.core.files import PRIVATE_UMASK, open_private_append, private_dir

__all__ = ["NEVER_RESTART", "RestartPolicy", "ServiceFailed", "ServiceSpec", "Supervisor"]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: Sequence[str]
    port: int
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/ready"
    start_timeout: float = 30.0
    restart: RestartPolicy = NEVER_RESTART

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


class State(StrEnum):
    STARTING = "starting"  # spawned, readiness not seen yet
    READY = "ready"
    BACKOFF = "backoff"  # exited; started again at next_start
    STOPPING = "stopping"  # `ai-suite restart`: stopped, then started again at once
    FAILED = "failed"  # given up (crash loop, no restart policy, port taken)


class RestartReason(StrEnum):
    CRASH = "crash"  # exited or never became ready
    REQUESTED = "requested"  # ai-suite restart SERVICE


@dataclass
class ServiceState:
    """What the supervisor knows of one service (status file, ``ai-suite status``)."""

    spec: ServiceSpec
    running: Running | None = None
    state: State = State.STARTING
    restarts: dict[RestartReason, int] = field(
        default_factory=lambda: dict.fromkeys(RestartReason, 0)
    )
    # monotonic times of the crash restarts within the policy window
    recent: deque[float] = field(default_factory=deque)
    started_at: float | None = None  # wall clock (time.time) of the current process
    ready_at: float | None = None
    spawned: float = 0.0  # monotonic
    next_start: float = 0.0  # monotonic, in BACKOFF and STOPPING
    last_exit_code: int | None = None
    reason: str = ""  # why the last restart happened, or why it was given up
    log_tail: list[str] = field(default_factory=list)
    last_probe: str = "no answer yet"

    @property
    def pid(self) -> int | None:
        alive = self.state in (State.STARTING, State.READY, State.STOPPING)
        return self.running.process.pid if self.running and alive else None

    def snapshot(self) -> dict[str, object]:
        return {
            "name": self.spec.name,
            "url": self.spec.url,
            "state": str(self.state),
            "pid": self.pid,
            "restarts": sum(self.restarts.values()),
            "restarts_by_reason": {str(k): v for k, v in self.restarts.items()},
            "started_at": self.started_at,
            "ready_at": self.ready_at,
            "last_exit_code": self.last_exit_code,
            "reason": self.reason,
            "log_tail": self.log_tail,
        }


def _exit_description(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"code {code}"


class Supervisor:
    def __init__(
        self,
        log_dir: Path,
        *,
        echo: Callable[[str], None] | None = None,
        on_change: Callable[[Supervisor], None] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.running: list[Running] = []
        self.echo = echo or (lambda _msg: None)
        # Called after every state change of a launched service (the status file).
        self.on_change = on_change or (lambda _sup: None)
        self.services: dict[str, ServiceState] = {}

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
            # The services write the security database, indexes and caches into the data
            # directory: whatever they create is for our user only (files 0600, dirs 0700).
            process = spawn(
                spec.argv, stdout=log_file, env=env, die_with_parent=True, umask=PRIVATE_UMASK
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
        while time.monotonic() < deadline:
            code = running.process.poll()
            if code is not None:
                raise ServiceFailed(
                    spec.name, f"exited during start-up with code {code}", running.log_tail()
                )
            ready, last_error = probe_ready(spec)
            if ready:
                return time.monotonic() - started
            time.sleep(poll)
        raise ServiceFailed(
            spec.name,
            f"not ready after {spec.start_timeout:g}s (last probe: {last_error})",
            running.log_tail(),
        )

    def exited(self) -> list[Running]:
        return [r for r in self.running if r.process.poll() is not None]

    # --- supervision with restarts --------------------------------------------------

    def launch(self, spec: ServiceSpec) -> ServiceState:
        """Start ``spec`` under its restart policy; :meth:`tick` then follows it.

        A busy port raises :class:`ServiceFailed` here (nothing to restart: the user
        must free the port or choose another).
        """
        service = ServiceState(spec)
        self._spawn(service, time.monotonic())
        self.services[spec.name] = service
        self.on_change(self)
        return service

    def settled(self) -> bool:
        """Every launched service is ready or given up (the start of ``ai-suite up``)."""
        return all(s.state in (State.READY, State.FAILED) for s in self.services.values())

    def request_restart(self, name: str) -> str:
        """Stop ``name`` (SIGTERM, then SIGKILL after its grace) and start it again.

        A service given up on starts again with a fresh restart budget. Returns what
        was done, for the requester.
        """
        service = self.services.get(name)
        if service is None:
            raise KeyError(name)
        now = time.monotonic()
        if service.state in (State.FAILED, State.BACKOFF):
            service.recent.clear()
            self._respawn(service, now, RestartReason.REQUESTED)
            message = f"{name}: starting again (requested)"
        else:
            assert service.running is not None
            signal_group(service.running.process.pid, signal.SIGTERM)
            service.state = State.STOPPING
            service.next_start = now + STOP_GRACE
            message = f"{name}: restarting (requested)"
        self.echo(message)
        self.on_change(self)
        return message

    def tick(self) -> None:
        """Advance every launched service's state once; never waits for a service."""
        now = time.monotonic()
        for service in list(self.services.values()):
            before = (service.state, service.pid)
            self._advance(service, now)
            if (service.state, service.pid) != before:
                self.on_change(self)

    def _advance(self, service: ServiceState, now: float) -> None:
        name = service.spec.name
        running = service.running
        if service.state == State.STOPPING:
            assert running is not None
            if running.process.poll() is None and now < service.next_start:
                return
            if running.process.poll() is None:
                self.echo(f"{name} did not stop in {STOP_GRACE:g}s; killing it")
            _kill_group(running.process)
            service.last_exit_code = running.process.returncode
            self._respawn(service, now, RestartReason.REQUESTED)
            return
        if service.state in (State.STARTING, State.READY):
            assert running is not None
            code = running.process.poll()
            if code is not None:
                service.last_exit_code = code
                when = "during start-up" if service.state == State.STARTING else "unexpectedly"
                self._crashed(service, now, f"exited {when} ({_exit_description(code)})")
                return
            if service.state == State.STARTING:
                ready, service.last_probe = probe_ready(service.spec)
                if ready:
                    service.state = State.READY
                    service.ready_at = time.time()
                    started = now - service.spawned
                    if sum(service.restarts.values()):  # at start, `up` prints one table
                        self.echo(
                            f"{name} is ready again (pid {running.process.pid}, {started:.1f}s)"
                        )
                elif now >= service.spawned + service.spec.start_timeout:
                    _kill_group(running.process)
                    self._crashed(
                        service,
                        now,
                        f"not ready after {service.spec.start_timeout:g}s"
                        f" (last probe: {service.last_probe})",
                    )
            return
        if service.state == State.BACKOFF and now >= service.next_start:
            service.recent.append(now)
            self._respawn(service, now, RestartReason.CRASH)

    def _crashed(self, service: ServiceState, now: float, what: str) -> None:
        name = service.spec.name
        policy = service.spec.restart
        assert service.running is not None
        # Whatever is left of its process group (grandchildren) must not hold the port.
        _kill_group(service.running.process)
        if service.running in self.running:
            self.running.remove(service.running)
        service.log_tail = service.running.log_tail()
        while service.recent and now - service.recent[0] > policy.window:
            service.recent.popleft()
        tail = "\n".join(f"    {line}" for line in service.log_tail) or "    (no output)"
        if not policy.on_failure:
            service.state = State.FAILED
            service.reason = f"{what}; its restart policy is never"
        elif policy.gives_up(len(service.recent)):
            service.state = State.FAILED
            service.reason = (
                f"{what}; gave up after {len(service.recent)} restarts within"
                f" {policy.window:g}s (crash loop)"
            )
        else:
            delay = policy.delay(len(service.recent))
            service.state = State.BACKOFF
            service.next_start = now + delay
            service.reason = what
            self.echo(
                f"{name}: {what}; restarting in {delay:g}s (restart {len(service.recent) + 1}"
                f" of at most {policy.max_restarts} within {policy.window:g}s)\n"
                f"  last log lines:\n{tail}"
            )
            return
        self.echo(
            f"error: {name}: {service.reason}; the other services keep running"
            f" (`ai-suite restart {name}` once it is fixed)\n  last log lines:\n{tail}"
        )

    def _respawn(self, service: ServiceState, now: float, reason: RestartReason) -> None:
        service.restarts[reason] += 1
        try:
            self._spawn(service, now)
        except ServiceFailed as exc:
            # Someone else took the port while the service was down: restarting again
            # cannot help until it is freed.
            service.state = State.FAILED
            service.reason = str(exc).split("\n", 1)[0].removeprefix(f"{service.spec.name}: ")
            self.echo(f"error: {exc}")

    def _spawn(self, service: ServiceState, now: float) -> None:
        if service.running is not None and service.running in self.running:
            self.running.remove(service.running)
        service.running = self.start(service.spec)
        service.state = State.STARTING
        service.started_at = time.time()
        service.ready_at = None
        service.spawned = now
        service.last_probe = "no answer yet"

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {name: service.snapshot() for name, service in self.services.items()}

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM every process group, wait up to ``grace`` seconds, then SIGKILL."""
        groups = [_group(running.process, running.spec.name) for running in reversed(self.running)]
        for group in stop_groups(groups, grace):
            self.echo(f"{group.name} did not stop in {grace:g}s; killing it")
        for running in self.running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                running.process.wait(timeout=5)
        self.running.clear()


def _group(process: subprocess.Popen[bytes], name: str) -> Group:
    return Group(
        name,
        send=lambda sig: signal_group(process.pid, sig),
        alive=lambda: process.poll() is None,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL what is left of a child's process group and reap the child."""
    signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


# Seconds a service asked to restart gets to stop after SIGTERM before SIGKILL.
STOP_GRACE = 10.0


def probe_ready(spec: ServiceSpec) -> tuple[bool, str]:
    """One readiness probe, as at start and after every restart: (ready, what it saw)."""
    problem = http_probe(spec.host, spec.port, spec.ready_path)
    return problem is None, problem or "ready"
