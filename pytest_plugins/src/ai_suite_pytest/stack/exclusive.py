"""Readers-writer coordination of tests that share one stack across processes.

Ordinary tests use the stack concurrently. A test that breaks it on purpose
(stops, kills or pauses a service) must run alone: it raises a "draining" flag,
waits until no ordinary test is in flight, runs, and lowers the flag. Ordinary
tests wait while the flag is up. Markers of dead processes are ignored, so a
killed worker cannot block the run.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from filelock import FileLock

_counter = itertools.count()


class StackBusyError(TimeoutError):
    pass


class Coordinator:
    def __init__(self, directory: Path, poll: float = 0.02) -> None:
        self.directory = directory
        self.inflight = directory / "inflight"
        self.flag = directory / "draining"
        self.poll = poll
        self.inflight.mkdir(parents=True, exist_ok=True)
        self._exclusive_lock = FileLock(str(directory / "exclusive.lock"))

    def _active(self) -> list[Path]:
        active = []
        for marker in self.inflight.iterdir():
            pid = int(marker.name.split("-", 1)[0])
            if psutil.pid_exists(pid):
                active.append(marker)
            else:
                marker.unlink(missing_ok=True)
        return active

    def _flag_up(self) -> bool:
        if not self.flag.exists():
            return False
        try:
            pid = int(self.flag.read_text() or 0)
        except (OSError, ValueError):
            return True
        if pid and not psutil.pid_exists(pid):
            self.flag.unlink(missing_ok=True)
            return False
        return True

    @contextmanager
    def shared(self, timeout: float = 600.0) -> Iterator[None]:
        marker = self.inflight / f"{os.getpid()}-{next(_counter)}"
        deadline = time.monotonic() + timeout
        while True:
            while self._flag_up():
                if time.monotonic() > deadline:
                    raise StackBusyError("a fault-injection test kept the stack for too long")
                time.sleep(self.poll)
            marker.touch()
            if not self._flag_up():
                break
            marker.unlink(missing_ok=True)  # lost the race to an exclusive test: wait again
        try:
            yield
        finally:
            marker.unlink(missing_ok=True)

    @contextmanager
    def exclusive(self, timeout: float = 600.0) -> Iterator[None]:
        with self._exclusive_lock.acquire(timeout=timeout):
            self.flag.write_text(str(os.getpid()))
            try:
                deadline = time.monotonic() + timeout
                while self._active():
                    if time.monotonic() > deadline:
                        raise StackBusyError("other tests kept using the stack for too long")
                    time.sleep(self.poll)
                yield
            finally:
                self.flag.unlink(missing_ok=True)
