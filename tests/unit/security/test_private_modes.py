"""The data directory is 0700, the security database and its -wal/-shm 0600.

Through the real code path: a service (or the CLI) opening ``Database`` on the data
directory's ``security.db`` and migrating it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from services.core.files import private_dir, private_file, tighten
from services.security.db import Database
from services.security.migrations import migrate


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(autouse=True)
def usual_umask():
    """The umask most desktops have: without our code, files 0644, dirs 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def open_and_migrate(data: Path) -> None:
    database = Database(data / "security.db")
    try:
        migrate(database)
        with database.transaction() as conn:
            conn.execute("SELECT 1")
        assert (data / "security.db-wal").exists()
        assert (data / "security.db-shm").exists()
        for name in ("security.db", "security.db-wal", "security.db-shm"):
            assert mode(data / name) == 0o600, name
    finally:
        database.close()


def test_a_fresh_data_dir_is_0700_and_the_database_files_0600(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    open_and_migrate(data)
    assert mode(data) == 0o700


def test_an_existing_wide_data_dir_and_database_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_and_migrate(data)
    database = Database(data / "security.db")
    database.connection()  # keep -wal/-shm in place while we widen them
    data.chmod(0o755)
    for name in ("security.db", "security.db-wal", "security.db-shm"):
        (data / name).chmod(0o644)
    try:
        open_and_migrate(data)
    finally:
        database.close()
    assert mode(data) == 0o700


def test_private_helpers(tmp_path: Path) -> None:
    directory = private_dir(tmp_path / "a" / "b")
    assert mode(directory) == 0o700
    file = private_file(directory / "f.log")
    assert mode(file) == 0o600
    file.chmod(0o664)
    private_file(file)
    assert mode(file) == 0o600
    assert file.read_bytes() == b""  # created empty, never truncated


def test_tighten_never_follows_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("x")
    target.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(target)
    tighten(link, 0o600)
    tighten(tmp_path / "missing", 0o600)  # no error
    assert mode(target) == 0o644
