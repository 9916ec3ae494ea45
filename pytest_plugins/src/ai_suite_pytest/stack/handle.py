"""What tests get: URLs of the stack's services and control over them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import httpx

from ai_suite_pytest.stack.backend import (
    ServiceStartError,
    ServiceUnavailable,
    StackBackend,
    probe_client,
)
from ai_suite_pytest.stack.exclusive import Coordinator
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
        self.coordinator = Coordinator(manager.run_dir / "coordination")
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
        return int(self.backend.state.ports[name])

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
        self.require(name)
        with probe_client() as client:
            return self._answers_probe(client, name)

    def wait_healthy(self, name: str, timeout: float = 30.0) -> float:
        """Seconds until ``name`` answers its readiness probe; raises after ``timeout``."""
        self.require(name)
        started = time.monotonic()
        with probe_client() as client:
            while time.monotonic() - started < timeout:
                if self._answers_probe(client, name):
                    return time.monotonic() - started
                time.sleep(0.05)
        raise ServiceStartError(f"{name} did not become healthy within {timeout:g}s")

    def _answers_probe(self, client: httpx.Client, name: str) -> bool:
        probe = self.manager.spec.service(name).ready.http
        try:
            response = client.get(self.backend.url(name) + probe)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

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
