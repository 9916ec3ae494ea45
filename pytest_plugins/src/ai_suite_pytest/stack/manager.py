"""Acquire, share, reuse and tear down one stack per run (pytest-free).

Every pytest process of a run (the controller and each xdist worker) calls
:meth:`StackManager.acquire`; the first one starts the stack under a file lock,
the others attach to it. Only the owner of the run (the controller) tears it
down, once, after the last worker is done. A detached reaper kills the stack if
the owner dies without tearing down.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from ai_suite_pytest.stack.backend import ServiceStartError, StackBackend, tail
from ai_suite_pytest.stack.compose import ComposeBackend, project_name
from ai_suite_pytest.stack.local import LocalBackend
from ai_suite_pytest.stack.reaper import READY_LINE
from ai_suite_pytest.stack.spec import StackSpec
from ai_suite_pytest.stack.state import StackState, sweep

OWNER_ENV = "PYTEST_STACK_OWNER"  # "pid:create_time" of the run's controller
REAPER_START_TIMEOUT = 30.0  # generous: a loaded CI machine imports slowly


class ReaperStartError(ServiceStartError):
    """The watchdog that guarantees no orphans could not be started."""


class StackManager:
    def __init__(
        self,
        spec: StackSpec,
        *,
        state_dir: Path,
        owner: tuple[int, float],
        keep: bool = False,
        lock_timeout: float = 300.0,
    ) -> None:
        self.spec = spec
        self.state_dir = state_dir
        self.owner = owner
        self.keep = keep
        self.fingerprint = spec.fingerprint()
        self.state_file = state_dir / f"{spec.name}.json"
        self.run_dir = state_dir / spec.name
        self._reaper: subprocess.Popen[bytes] | None = None
        self.backend: StackBackend | None = None
        self._lock = FileLock(str(state_dir / f"{spec.name}.lock"), timeout=lock_timeout)
        state_dir.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def locked(self) -> Iterator[StackState | None]:
        with self._lock:
            yield StackState.load(self.state_file)

    def sweep_leftovers(self) -> list[str]:
        with self._lock:
            return sweep(self.state_dir, keep_fingerprint=self.fingerprint if self.keep else None)

    def _reusable(self, state: StackState, backend: str) -> bool:
        if state.backend != backend or state.fingerprint != self.fingerprint:
            return False
        if not state.all_alive():
            return False
        if (state.owner_pid, state.owner_create_time) == self.owner:
            return True  # started earlier in this run by another worker
        return self.keep and state.keep

    def _make_backend(self, state: StackState) -> StackBackend:
        if state.backend == "compose":
            return ComposeBackend(self.spec, self.run_dir, state, self.state_file)
        return LocalBackend(self.spec, self.run_dir, state, self.state_file)

    def acquire(self, only: list[str] | None = None, *, backend: str = "local") -> StackBackend:
        """The running stack, started if needed; ``only`` limits what a new start includes.

        ``backend`` is ``local`` or ``compose``; a running stack of the other kind is
        recreated. Optional services the backend has nothing to run with (no command, no
        Compose service) are recorded as unavailable and not started.
        """
        unrunnable = self.spec.without_runner(backend)
        if unrunnable:
            only = [n for n in (only or self.spec.names()) if n not in unrunnable]
        with self._lock:
            state = StackState.load(self.state_file)
            if state is not None and self._reusable(state, backend):
                if (state.owner_pid, state.owner_create_time) != self.owner:
                    state.owner_pid, state.owner_create_time = self.owner  # adopt a kept stack
                    # A new run tries the optional services again: `make llama` may
                    # have installed what was missing.
                    state.unavailable.clear()
                    state.stopped.clear()
                    state.save(self.state_file)
                running = self._make_backend(state)
                self.backend = running
                if unrunnable.keys() - state.unavailable.keys():
                    state.unavailable.update(unrunnable)
                    state.save(self.state_file)
                settled = state.settled()
                if any(s.name not in settled for s in self.spec.start_order(only)):
                    running.start_all(only)
                return running
            if state is not None:
                state.kill_all()  # stale or different configuration: recreate
                self.state_file.unlink(missing_ok=True)
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.backend = None
            state = StackState(
                stack=self.spec.name,
                fingerprint=self.fingerprint,
                backend=backend,
                owner_pid=self.owner[0],
                owner_create_time=self.owner[1],
                keep=self.keep,
            )
            if backend == "compose":
                # Stable for a kept stack (reused by the next run), unique per run otherwise.
                token = "keep" if self.keep else f"{self.owner[0]}:{self.owner[1]}"
                state.compose_project = project_name(self.spec, self.state_dir, token)
            state.unavailable.update(unrunnable)
            state.save(self.state_file)
            if not self.keep:
                try:
                    state.reaper_pid = self._start_reaper()
                except ReaperStartError:
                    self.state_file.unlink(missing_ok=True)  # nothing runs: nothing to record
                    raise
                state.save(self.state_file)
            fresh = self._make_backend(state)
            self.backend = fresh
            try:
                fresh.start_all(only)
            except BaseException:
                fresh.stop_all()  # a failed start leaves nothing behind
                self._drop_state(fresh.state)
                raise
            return fresh

    def _start_reaper(self) -> int:
        """Start the watchdog and wait for it to say it is watching.

        Without that answer a reaper that cannot start (a broken install, a missing
        module) would go unnoticed until the day it is needed.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = self.run_dir / "reaper.log"
        with log.open("ab") as errors:
            # Kept referenced for the whole run: the reaper must outlive this object.
            self._reaper = subprocess.Popen(  # noqa: S603 - our own module, no shell
                [sys.executable, "-m", "ai_suite_pytest.stack.reaper", str(self.state_file)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                start_new_session=True,  # survives Ctrl-C and the death of pytest
                cwd=Path(__file__).resolve().parents[2],
            )
        assert self._reaper.stdout is not None
        with self._reaper.stdout as answer:
            ready, _, _ = select.select([answer], [], [], REAPER_START_TIMEOUT)
            line = answer.readline() if ready else b""
        if line.strip() != READY_LINE.encode():
            self._reaper.kill()
            self._reaper.wait()
            raise ReaperStartError(
                f"the stack's reaper (which removes the stack if pytest dies) did not start"
                f" within {REAPER_START_TIMEOUT:g}s; its output ({log}):\n" + "\n".join(tail(log))
            )
        return self._reaper.pid

    def teardown(self, artifacts_dir: Path | None = None) -> bool:
        """Stop the stack if this run owns it (and it is not kept); True if stopped."""
        with self._lock:
            state = StackState.load(self.state_file)
            if state is None or (state.owner_pid, state.owner_create_time) != self.owner:
                return False
            # The backend that started the processes can also reap them.
            backend = self.backend or self._make_backend(state)
            backend.state = state
            if artifacts_dir is not None:
                backend.sync_logs()
                self._copy_logs(artifacts_dir)
            if state.keep:
                return False
            backend.stop_all()
            self._drop_state(state)
            return True

    def _drop_state(self, state: StackState) -> None:
        """Forget a stopped stack, unless Docker failed to remove its Compose project.

        The record is then kept: the reaper retries when this run ends and the next
        run's sweep after that, instead of the containers being forgotten.
        """
        if state.compose_leftover:
            state.save(self.state_file)
        else:
            self.state_file.unlink(missing_ok=True)

    def _copy_logs(self, artifacts_dir: Path) -> None:
        logs = self.run_dir / "logs"
        if logs.is_dir():
            target = artifacts_dir / self.spec.name
            target.mkdir(parents=True, exist_ok=True)
            for log in logs.glob("*.log"):
                shutil.copy2(log, target / log.name)


def owner_from_env() -> tuple[int, float] | None:
    raw = os.environ.get(OWNER_ENV)
    if not raw:
        return None
    pid, _, created = raw.partition(":")
    return int(pid), float(created)
