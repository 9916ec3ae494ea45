"""Running a program for a tool: argv only, scrubbed environment, bounded output and time.

Programs start in their own session (process group), so a timeout or a
cancelled call kills everything they spawned, not only the direct child.
Output beyond the limit is counted but not kept, and the result says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def clean_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """PATH, HOME (the workspace) and LANG, plus ``extra``; never anything secret-looking."""
    env = {"PATH": CLEAN_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra or {})
    return {name: value for name, value in env.items() if not _SECRET_NAME.search(name)}


@dataclass
class _Capture:
    limit: int
    data: bytearray
    total: int = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.total += len(chunk)
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", "replace")

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None
    timed_out: bool
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    stdout_truncated: bool
    stderr_truncated: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
            "truncated": self.stdout_truncated or self.stderr_truncated,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
        }


# After the kill: the pipes close as soon as the last process holding them is gone. Bound
# the wait anyway, so a process that escaped the kill can never hold the call open.
_DRAIN_AFTER_KILL = 2.0


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_process(
    argv: list[str],
    *,
    cwd_fd: int | None,
    env: dict[str, str],
    time_limit: float,
    max_output: int,
    preexec: Callable[[], None] | None = None,
) -> ProcessResult:
    """Run ``argv`` (never through a shell) in the directory open as ``cwd_fd``.

    The working directory is the already-verified directory descriptor itself
    (``/proc/self/fd/N`` in the child), so no path is resolved again; ``None`` starts it in
    ``/`` with no descriptor passed (the box: it changes directory itself, and a
    descriptor of a host directory would be a way out of it). ``preexec`` runs in
    the child before exec (joining a cgroup: a single write to an open descriptor).
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd="/" if cwd_fd is None else f"/proc/self/fd/{cwd_fd}",
        pass_fds=() if cwd_fd is None else (cwd_fd,),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        # Joining a cgroup: one os.write to an open descriptor, no locks taken.
        preexec_fn=preexec,
    )
    out, err = _Capture(max_output, bytearray()), _Capture(max_output, bytearray())
    assert process.stdout is not None
    assert process.stderr is not None
    work = asyncio.gather(out.drain(process.stdout), err.drain(process.stderr), process.wait())
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(work), time_limit)
    except TimeoutError:
        timed_out = True
    finally:
        # Also runs when the whole tool call is cancelled: nothing outlives the call.
        killed = process.returncode is None or timed_out
        if killed:
            _kill_group(process)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(work, _DRAIN_AFTER_KILL if killed else None)
    return ProcessResult(
        exit_code=None if timed_out else process.returncode,
        timed_out=timed_out,
        stdout=out.text(),
        stderr=err.text(),
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
    )
