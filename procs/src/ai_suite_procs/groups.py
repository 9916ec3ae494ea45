"""Children in their own process group: spawn, signal, stop (SIGTERM, then SIGKILL).

A child started by :func:`spawn` leads a new session, so a signal to its group reaches
its grandchildren too, and Ctrl-C in the terminal does not reach it before its parent
decides. With ``die_with_parent`` it also receives SIGKILL when its parent dies (Linux
``PR_SET_PDEATHSIG``), so even ``kill -9`` of the parent leaves nothing running.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child: dlopen() after fork() can deadlock when
# another thread held the loader lock at fork time.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _prepare_child(  # pragma: no cover - runs in the child, between fork() and exec()
    parent_pid: int, die_with_parent: bool, umask: int | None
) -> None:
    if umask is not None:
        os.umask(umask)
    if die_with_parent and _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent_pid:
            # The parent died between fork() and prctl(): no signal will come.
            os._exit(1)


def spawn(
    argv: Sequence[str],
    *,
    stdout: IO[bytes],
    env: Mapping[str, str],
    cwd: Path | str | None = None,
    die_with_parent: bool = False,
    umask: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` (never through a shell) leading its own process group.

    Its output (stdout and stderr) goes to ``stdout``, usually a log file opened for
    appending; stdin is empty. ``umask`` is set in the child before it runs.
    """
    return subprocess.Popen(  # noqa: S603 - an argv list, no shell
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: signals reach grandchildren
        preexec_fn=functools.partial(_prepare_child, os.getpid(), die_with_parent, umask),
    )


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal every process of the group ``pgid``; a group that is gone is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class Group:
    """A process group to stop: how to signal all of it, and whether its leader runs."""

    name: str
    # Signals the whole group; may refuse a group whose leader is no longer the one it
    # started (a reused pid belongs to a stranger).
    send: Callable[[signal.Signals], None]
    alive: Callable[[], bool]  # may reap the leader


def stop_groups(groups: Sequence[Group], grace: float, *, poll: float = 0.05) -> list[Group]:
    """SIGTERM every group at once; SIGKILL after ``grace`` seconds what still runs.

    Returns the groups whose leader ignored SIGTERM for ``grace`` seconds. What is left
    of every group (grandchildren that outlived their leader) gets SIGKILL too.
    """
    for group in groups:
        group.send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(group.alive() for group in groups) and time.monotonic() < deadline:
        time.sleep(poll)
    stubborn = [group for group in groups if group.alive()]
    for group in groups:
        group.send(signal.SIGKILL)
    return stubborn
