"""Private files and directories: the data directory 0700, databases and logs 0600.

The data directory holds the security database (key hashes, the audit log, approvals)
and every service's log; nobody but the user running the platform may read them.
Existing paths are tightened only when they belong to us (``chown`` is not ours to do,
and a directory shared on purpose, owned by someone else, is left alone).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# Child processes (the services `ai-suite up` starts) create files 0600, dirs 0700.
PRIVATE_UMASK = 0o077


def tighten(path: Path, mode: int) -> None:
    """Remove every permission bit outside ``mode`` from ``path`` if it is ours.

    Symlinks are not followed: a link planted in the data directory must not make us
    chmod its target.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
        return
    current = stat.S_IMODE(info.st_mode)
    if current & ~mode:
        os.chmod(path, current & mode)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; tighten it if it exists and is ours."""
    path = Path(path)
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    tighten(path, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty as 0600 if missing; tighten it if it exists and is ours."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    os.close(os.open(path, flags, PRIVATE_FILE_MODE))
    tighten(path, PRIVATE_FILE_MODE)
    return path


def open_private_append(path: Path) -> int:
    """A file descriptor appending to ``path``, created 0600 (existing files tightened)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    tighten(Path(path), PRIVATE_FILE_MODE)
    return fd
