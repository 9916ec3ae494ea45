"""What tests get: URLs of the stack's services and control over them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from ai_suite_pytest.stack.backend import ServiceStartError, ServiceUnavailable, StackBackend
from ai_suite_pytest.stack.exclusive import Coordinator, coordination_dir
from ai_suite_pytest.stack.manager import StackManager
from ai_suite_pytest.stack.state import StackState


class Stack:
    """A running stack shared by every process of the run.

    Control operations reload the shared state under the stack's lock, so a
    service restarted by one xdist worker is seen by the others.

    An optional service that is unavailable cannot be used: its URL, port and controls
    call ``on_unavailable(reason)``, which raises :class:`ServiceUnavailable` by default
    (the pytest adapter skips the test instead). Its log stays readable.
    """

    def __init__(
        self,
        manager: StackManager,
        backend: StackBackend,
        on_unavailable: Callable[[ServiceUnavailable], NoReturn] | None = None,
    ) -> None:
        self.manager = manager
        self.backend = backend
        self.coordinator = Coordinator(coordination_dir(manager.state_dir, manager.spec.name))
        self._on_unavailable = on_unavailable or _raise

    @property
    def unavailable(self) -> dict[str, str]:
        """Optional services that are not running, and why."""
        return dict(self.backend.state.unavailable)

    def require(self, name: str) -> None:
        """Return if ``name`` is a service that can be used; else ``on_unavailable``."""
        self.manager.spec.service(name)  # KeyError naming the choices
        reason = self.backend.unavailable_reason(name)
        if reason is not None:
            self._on_unavailable(ServiceUnavailable(name, reason))

    @property
    def backend_name(self) -> str:
        """``local`` or ``compose``."""
        return self.backend.name

    @property
    def services(self) -> list[str]:
        return self.manager.spec.names()

    def url(self, name: str) -> str:
        self.require(name)
        return self.backend.url(name)

    def port(self, name: str) -> int:
        self.require(name)
        return self.backend.port(name)

    @property
    def data_dir(self) -> Path:
        return self.backend.data_dir

    def log_path(self, name: str) -> Path:
        return self.backend.log_path(name)

    def log_text(self, name: str) -> str:
        """Everything ``name`` has logged so far. On the compose backend the file at
        :meth:`log_path` is only brought up to date when a test starts or fails; this
        syncs it first, so a test can check what a service logged during the test."""
        self.backend.sync_logs()
        path = self.backend.log_path(name)
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def _refresh(self, state: StackState | None) -> None:
        if state is not None:
            self.backend.state = state

    def stop(self, name: str) -> None:
        self.require(name)
        with self.manager.locked() as state:
            self._refresh(state)
            self.backend.stop(name)
            self._mark_stopped(name, stopped=True)

    def kill(self, name: str) -> None:
        self.require(name)
        with self.manager.locked() as state:
            self._refresh(state)
            self.backend.kill(name)
            self._mark_stopped(name, stopped=True)

    def start(self, name: str) -> None:
        self.require(name)
        with self.manager.locked() as state:
            self._refresh(state)
            self._mark_stopped(name, stopped=False)
            self.backend.start(name)

    def _mark_stopped(self, name: str, *, stopped: bool) -> None:
        """Record (under the lock) that a test took ``name`` down, or brings it back, so
        that a worker attaching meanwhile leaves it as the test wants it."""
        state = self.backend.state
        state.stopped = sorted((set(state.stopped) | {name}) if stopped else
                               (set(state.stopped) - {name}))  # fmt: skip
        state.save(self.manager.state_file)

    def restart(self, name: str) -> None:
        self.require(name)
        with self.manager.locked() as state:
            self._refresh(state)
            self._mark_stopped(name, stopped=False)
            self.backend.restart(name)

    def pause(self, name: str) -> None:
        self.require(name)
        with self.manager.locked() as state:
            self._refresh(state)
            self.backend.pause(name)

    def resume(self, name: str) -> None:
        self.require(name)
        with self.manager.locked() as state:
            self._refresh(state)
            self.backend.resume(name)

    def is_healthy(self, name: str) -> bool:
        """Whether ``name`` runs, is not paused and passes its readiness check now."""
        self.require(name)
        return self._healthy(name, self.backend.probe(name).check)

    def _healthy(self, name: str, check: Callable[[], str | None]) -> bool:
        current = StackState.load(self.manager.state_file)
        if current is not None:
            self.backend.state = current
            if name in current.paused:
                # A stopped process's kernel still accepts TCP connections: a tcp check
                # alone would call a paused service healthy.
                return False
        # A log line or a command's answer can outlive the process: for those, ask it too.
        kind = self.manager.spec.service(name).ready.kind
        if kind not in ("http", "tcp") and not self.backend.is_alive(name):
            return False
        return check() is None

    def wait_healthy(self, name: str, timeout: float = 30.0) -> float:
        """Seconds until ``name`` passes its readiness check; raises after ``timeout``."""
        self.require(name)
        probe = self.backend.probe(name)
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self._healthy(name, probe.check):
                return time.monotonic() - started
            time.sleep(0.05)
        raise ServiceStartError(
            f"{name} did not become healthy within {timeout:g}s: the"
            f" {self.manager.spec.service(name).ready.describe()} last saw"
            f" {probe.check() or 'success, but the service is paused or not running'}"
        )

    # -- faults that undo themselves -----------------------------------------

    @contextmanager
    def fault(self, name: str, kind: str = "kill") -> Iterator[None]:
        """``kind`` (``kill``, ``stop`` or ``pause``) ``name`` for the ``with`` block, then
        bring it back (started and ready, or resumed), whatever the block did or raised."""
        actions = {"kill": self.kill, "stop": self.stop, "pause": self.pause}
        if kind not in actions:
            raise ValueError(f"fault kind must be one of {', '.join(actions)}, not {kind!r}")
        actions[kind](name)
        try:
            yield
        finally:
            with self.manager.locked() as state:
                self._refresh(state)
                self._restore(name, self._down().get(name))

    def _down(self) -> dict[str, str]:
        """Services that should run but do not (or are paused), and how they were left."""
        state = self.backend.state
        down = {name: "stopped or killed" for name in state.stopped}
        down.update({name: "paused" for name in state.paused})
        if self.backend.name == "local":
            # A process that died by itself (or was signalled behind the plugin's back);
            # on compose that question costs a `docker` call per test, so only what the
            # state says is restored there.
            for name, record in state.processes.items():
                if name not in down and not record.alive():
                    down[name] = "exited"
        return down

    def _restore(self, name: str, how: str | None) -> None:
        if how is None:
            return
        if how == "paused":
            self.backend.resume(name)
            return
        self._mark_stopped(name, stopped=False)
        record = self.backend.state.processes.get(name)
        if record is not None:
            if record.alive():
                return  # recorded as stopped, yet running: nothing to bring back
            del self.backend.state.processes[name]  # its process is gone: start afresh
        self.backend.start(name)

    def left_down(self) -> dict[str, str]:
        """Cheap, without the lock: what a test left down (empty almost always)."""
        current = StackState.load(self.manager.state_file)
        if current is not None:
            self.backend.state = current
        return self._down()

    def restore_all(self) -> dict[str, str]:
        """Start or resume every service left down; returns each with how it was left.
        The caller holds the exclusive coordination lock: no test is using the stack."""
        with self.manager.locked() as state:
            self._refresh(state)
            down = self._down()
            for name in self.manager.spec.start_order(list(down)):
                self._restore(name.name, down.get(name.name))
        return down

    def log_offsets(self) -> dict[str, int]:
        self.backend.sync_logs()
        offsets = {}
        for name in self.services:
            path = self.log_path(name)
            offsets[name] = path.stat().st_size if path.exists() else 0
        return offsets

    def logs_since(self, offsets: dict[str, int], max_bytes: int = 20_000) -> dict[str, str]:
        """Each service's log written since ``offsets``; the tail if it is long, marked so."""
        self.backend.sync_logs()
        out = {}
        for name, offset in offsets.items():
            path = self.log_path(name)
            if not path.exists():
                continue
            with path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read()
            if not data:
                continue
            text = data.decode("utf-8", errors="replace")
            if len(data) > max_bytes:
                text = (
                    f"[{len(data) - max_bytes} earlier bytes omitted; full log: {path}]\n"
                    + data[-max_bytes:].decode("utf-8", errors="replace")
                )
            out[name] = text
        return out


def _raise(unavailable: ServiceUnavailable) -> NoReturn:
    raise unavailable
