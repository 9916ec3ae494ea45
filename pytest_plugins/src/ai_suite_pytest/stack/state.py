"""What a stack run started, on disk, so that nothing it started can be orphaned.

Every process a backend starts is recorded (pid, process group, start time)
before the backend waits for it. A later run, or the reaper, reads the record
and kills what is left. Start times guard against pid reuse.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from ai_suite_pytest.stack import docker_cli


@dataclass
class ProcessRecord:
    service: str
    pid: int
    pgid: int
    create_time: float
    port: int
    log_path: str

    def process(self) -> psutil.Process | None:
        """The live process, or None if it is gone or the pid was reused."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.05:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def alive(self) -> bool:
        return self.process() is not None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        # Signal the whole group (grandchildren too), but only if the leader is
        # still ours: a reused pgid would belong to a stranger.
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)


@dataclass
class StackState:
    stack: str
    fingerprint: str
    backend: str
    owner_pid: int
    owner_create_time: float
    keep: bool = False
    reaper_pid: int | None = None
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    # Compose backend: the project (removed with `docker compose -p NAME down`), the
    # stack services started in it (stack name -> Compose service), and whether a
    # removal failed (the record is then kept for the next sweep).
    compose_project: str | None = None
    compose_services: dict[str, str] = field(default_factory=dict)
    compose_leftover: bool = False
    # Optional services that are not running, and why (stack name -> reason): they never
    # started, so there is nothing to kill; tests that use them are skipped.
    unavailable: dict[str, str] = field(default_factory=dict)
    # Services a test stopped or killed (fault injection): they stay down until a test
    # starts them, even when another xdist worker attaches to the stack meanwhile.
    stopped: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)  # atomic: a reader never sees half a file

    @classmethod
    def load(cls, path: Path) -> StackState | None:
        try:
            raw = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        raw["processes"] = {k: ProcessRecord(**v) for k, v in raw.get("processes", {}).items()}
        return cls(**raw)

    def owner_alive(self) -> bool:
        try:
            proc = psutil.Process(self.owner_pid)
            return abs(proc.create_time() - self.owner_create_time) <= 0.05
        except psutil.Error:
            return False

    def started(self) -> set[str]:
        """Stack services this state says are running."""
        return set(self.processes) | set(self.compose_services)

    def settled(self) -> set[str]:
        """Stack services already dealt with: running, found unavailable, or stopped by
        a test (an attaching worker must not start those again)."""
        return self.started() | set(self.unavailable) | set(self.stopped)

    def all_alive(self) -> bool:
        if self.compose_project is not None:
            services = sorted(set(self.compose_services.values()))
            return docker_cli.project_running(self.compose_project, services)
        return bool(self.processes) and all(p.alive() for p in self.processes.values())

    def kill_all(self) -> list[str]:
        killed = []
        if self.compose_project is not None:
            self.compose_leftover = not docker_cli.down_project(self.compose_project)
            killed.append(
                f"compose project {self.compose_project}"
                + (" NOT removed: `docker compose down` failed" if self.compose_leftover else "")
            )
        for record in self.processes.values():
            if record.alive():
                record.kill()
                killed.append(f"{record.service} (pid {record.pid})")
        # Poll rather than wait(): a killed orphan may stay a zombie when PID 1
        # does not reap (containers), and alive() already counts zombies as dead.
        deadline = time.monotonic() + 5
        while any(r.alive() for r in self.processes.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return killed


def current_process_identity() -> tuple[int, float]:
    pid = os.getpid()
    return pid, psutil.Process(pid).create_time()


def sweep(state_dir: Path, *, keep_fingerprint: str | None = None) -> list[str]:
    """Kill what earlier runs left behind; returns a line per process killed.

    A state whose owner is gone is a leftover (Ctrl-C, SIGTERM or kill -9 of
    pytest). A kept stack (``--stack-keep``) is left alone when its fingerprint
    is the one about to be used, so that it can be reused.
    """
    killed: list[str] = []
    for path in sorted(state_dir.glob("*.json")):
        state = StackState.load(path)
        if state is None or state.owner_alive():
            continue
        if state.keep and state.fingerprint == keep_fingerprint and state.all_alive():
            continue
        killed += [f"{state.stack}: {line}" for line in state.kill_all()]
        if state.compose_leftover:
            state.save(path)  # Docker did not answer: try again next time
            continue
        path.unlink(missing_ok=True)
    return killed
