"""Which processes hold a SQLite file open: the hint in a reset-deadline error."""

from __future__ import annotations

import os
from pathlib import Path


def holders_of(path: Path) -> list[str]:
    """Processes with the database or its ``-wal``/``-shm`` file open, as readable lines."""
    import psutil  # only needed on the error path; keeps plugin loading cheap

    wanted = {str(path.resolve()) + suffix for suffix in ("", "-wal", "-shm")}
    found: list[str] = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            files = proc.open_files()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if any(f.path in wanted for f in files):
            cmdline = " ".join(proc.info.get("cmdline") or [])[:120]
            me = " (this pytest process)" if proc.pid == os.getpid() else ""
            found.append(f"pid {proc.pid}{me}: {cmdline or proc.info.get('name')}")
    return found
