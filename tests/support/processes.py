"""Waiting for processes to go away, as tests of process clean-up need.

A kill is asynchronous: the kernel closes a killed process's pipes a moment
before it marks the process dead, so a check made right after the kill can
still see it running. These helpers wait for the effect with a deadline far
longer than any healthy clean-up needs, so they only fail on a real leak.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import psutil


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody has reaped yet counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def assert_all_gone(pids: Iterable[int], timeout: float = 15.0) -> None:
    """Fail naming the processes still running after ``timeout`` seconds."""
    pids = list(pids)
    if not wait_until(lambda: all(gone(pid) for pid in pids), timeout):
        raise AssertionError(f"still running: {[pid for pid in pids if not gone(pid)]}")
