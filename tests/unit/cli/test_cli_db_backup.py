"""``ai-suite db backup|verify|restore`` in-process, and services/security/backup.py.

Under load and against running processes: tests/integration/cli/test_cli_db_backup_live.py.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import Result
from filelock import FileLock
from prometheus_client import CollectorRegistry

from services.security.backup import (
    BackupError,
    BackupSchedule,
    backup,
    default_backup_path,
    prune,
    restore,
    scheduled_backup_dir,
    start_scheduled_backups,
    verify,
)
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import LATEST_VERSION
from services.security.rbac import AccessControl, AuthError
from services.security.settings import BackupSettings

Run = Callable[..., Result]


def _key(db_path: Path, user: str = "alice") -> str:
    database = Database(db_path)
    try:
        return KeyStore(database).create_key(user, "developer").key
    finally:
        database.close()


def _authenticates(db_path: Path, key: str) -> bool:
    database = Database(db_path)
    try:
        AccessControl(database, CollectorRegistry()).authenticate(key)
        return True
    except AuthError:
        return False
    finally:
        database.close()


def test_backup_prints_the_path_and_writes_a_private_verified_copy(
    run: Run, migrated_data_dir: Path
) -> None:
    key = _key(migrated_data_dir / "security.db")

    result = run("db", "backup")

    assert result.exit_code == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.parent == migrated_data_dir / "backups"
    assert path.name.startswith("security-")
    assert path.suffix == ".db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"backup {path}: {path.stat().st_size} bytes, integrity_check ok" in result.stderr
    assert f"schema version {LATEST_VERSION}, 1 users, 1 keys" in result.stderr
    assert not list(path.parent.glob("*.partial"))
    assert _authenticates(path, key)


def test_backup_to_an_explicit_path_refuses_to_overwrite(
    run: Run, migrated_data_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "copy.db"

    assert run("db", "backup", str(target)).exit_code == 0
    again = run("db", "backup", str(target))

    assert again.exit_code == 1
    assert f"{target} exists; choose another path" in again.stderr


def test_backup_without_a_database_says_what_to_run(run: Run, data_dir: Path) -> None:
    result = run("db", "backup")

    assert result.exit_code == 1
    assert "run `ai-suite db migrate`" in result.stderr


def test_default_paths_never_collide(tmp_path: Path) -> None:
    now = datetime(2026, 12, 1, 16, 0, 0, tzinfo=UTC)
    first = default_backup_path(tmp_path, now)
    first.touch()

    assert first.name == "security-20261201T160000.db"
    assert default_backup_path(tmp_path, now).name == "security-20261201T160000-2.db"


@pytest.mark.parametrize(
    ("make", "complaint"),
    [
        (lambda p: p.write_bytes(b"not a database at all" * 100), "not a readable SQLite"),
        (lambda p: sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit(), "no tab"),
    ],
)
def test_verify_refuses_what_is_not_a_security_database(
    run: Run, tmp_path: Path, make: Callable[[Path], None], complaint: str
) -> None:
    path = tmp_path / "other.db"
    make(path)

    with pytest.raises(BackupError, match=complaint):
        verify(path)
    assert run("db", "verify", str(path)).exit_code == 1


def test_verify_refuses_a_schema_from_a_newer_version(migrated_data_dir: Path) -> None:
    path = migrated_data_dir / "security.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO schema_migrations VALUES (?, 'from the future', 'x')", (LATEST_VERSION + 1,)
    )
    conn.commit()
    conn.close()

    with pytest.raises(BackupError, match=f"schema version {LATEST_VERSION + 1}"):
        verify(path)


def test_verify_reports_a_damaged_file(migrated_data_dir: Path, tmp_path: Path) -> None:
    _key(migrated_data_dir / "security.db")
    path = backup(migrated_data_dir / "security.db", tmp_path / "b.db").path
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'api_keys'").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    # Scribble over the api_keys table's b-tree page; the header and schema stay valid.
    data[start : start + page_size] = b"\xff" * page_size
    path.write_bytes(bytes(data))

    # integrity_check lists the damage, or SQLite refuses the page outright ("malformed").
    with pytest.raises(BackupError, match=r"fails PRAGMA integrity_check|malformed"):
        verify(path)


def test_restore_replaces_the_database_and_keeps_the_old_one(
    run: Run, migrated_data_dir: Path, tmp_path: Path
) -> None:
    db_path = migrated_data_dir / "security.db"
    before = _key(db_path, "alice")
    saved = backup(db_path, tmp_path / "saved.db").path
    after = _key(db_path, "bob")

    result = run("db", "restore", str(saved))

    assert result.exit_code == 0, result.stderr
    assert _authenticates(db_path, before)
    assert not _authenticates(db_path, after)
    replaced = list(migrated_data_dir.glob("security.db.replaced-*"))
    assert len(replaced) == 1
    assert f"kept the replaced database as {replaced[0]}" in result.stderr
    assert _authenticates(replaced[0], after)
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_restore_refuses_a_bad_file_and_leaves_the_database_alone(
    run: Run, migrated_data_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"x" * 8192)
    key = _key(migrated_data_dir / "security.db")

    result = run("db", "restore", str(bad))

    assert result.exit_code == 1
    assert "not a readable SQLite database" in result.stderr
    assert _authenticates(migrated_data_dir / "security.db", key)
    assert not list(migrated_data_dir.glob("security.db.replaced-*"))


def test_restore_refuses_while_the_up_lock_is_held(
    run: Run, migrated_data_dir: Path, tmp_path: Path
) -> None:
    saved = backup(migrated_data_dir / "security.db", tmp_path / "saved.db").path
    lock = FileLock(str(migrated_data_dir / "run" / "up.lock"))
    (migrated_data_dir / "run").mkdir(mode=0o700)
    with lock:
        result = run("db", "restore", str(saved))

    assert result.exit_code == 1
    assert "`ai-suite up` is running" in result.stderr
    assert not list(migrated_data_dir.glob("security.db.replaced-*"))


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    names = [f"security-2026120{day}T000000.db" for day in range(1, 6)]
    for age, name in enumerate(reversed(names)):
        path = tmp_path / name
        path.touch()
        os.utime(path, ns=(10**18 - age * 10**9, 10**18 - age * 10**9))
    (tmp_path / "notes.txt").touch()

    removed = prune(tmp_path, 2)

    assert sorted(p.name for p in removed) == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[3:], "notes.txt"])


def test_the_schedule_backs_up_and_prunes_only_its_own(run: Run, migrated_data_dir: Path) -> None:
    by_hand = Path(run("db", "backup").stdout.strip())
    lines: list[str] = []
    schedule = BackupSchedule(
        migrated_data_dir / "security.db",
        scheduled_backup_dir(migrated_data_dir),
        interval_seconds=3600,
        keep=2,
        echo=lines.append,
    )

    for _ in range(3):
        assert schedule.run_once() is not None

    assert len(list(scheduled_backup_dir(migrated_data_dir).glob("security-*.db"))) == 2
    assert "removed 1 old backup(s)" in lines[-1]
    assert by_hand.is_file()


def test_the_schedule_reports_a_failure_and_keeps_going(tmp_path: Path) -> None:
    lines: list[str] = []
    schedule = BackupSchedule(
        tmp_path / "missing.db", tmp_path / "backups", interval_seconds=1, keep=1, echo=lines.append
    )

    assert schedule.run_once() is None
    assert schedule.failures == 1
    assert lines[0].startswith(f"error: scheduled backup of {tmp_path / 'missing.db'} failed")


def test_the_schedule_thread_runs_on_its_interval(migrated_data_dir: Path) -> None:
    done = threading.Event()

    def echo(line: str) -> None:
        if line.startswith("backup: "):
            done.set()

    settings = BackupSettings(data_dir=migrated_data_dir, backup_interval_hours=0.0001)
    schedule = start_scheduled_backups(settings, echo=echo)
    assert schedule is not None
    try:
        assert done.wait(30)
    finally:
        schedule.stop()
    assert list(scheduled_backup_dir(migrated_data_dir).glob("security-*.db"))


def test_no_schedule_when_the_interval_is_zero(
    migrated_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AI_SUITE_BACKUP_INTERVAL_HOURS", raising=False)
    settings = BackupSettings(data_dir=migrated_data_dir)

    assert settings.backup_interval_hours == 0
    assert start_scheduled_backups(settings, echo=print) is None


def test_restore_module_refuses_a_backup_that_is_missing(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no such file"):
        restore(tmp_path / "nope.db", tmp_path / "security.db")


def test_restore_onto_a_fresh_data_dir_replaces_nothing(
    migrated_data_dir: Path, tmp_path: Path
) -> None:
    key = _key(migrated_data_dir / "security.db")
    saved = backup(migrated_data_dir / "security.db", tmp_path / "saved.db").path
    fresh = tmp_path / "fresh" / "security.db"

    restored = restore(saved, fresh)

    assert restored.replaced is None
    assert _authenticates(fresh, key)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_restoring_the_database_onto_itself_keeps_it_whole(
    run: Run, migrated_data_dir: Path
) -> None:
    db_path = migrated_data_dir / "security.db"
    key = _key(db_path)

    result = run("db", "restore", str(db_path))

    assert result.exit_code == 0, result.stderr
    assert _authenticates(db_path, key)
    [replaced] = migrated_data_dir.glob("security.db.replaced-*")
    assert _authenticates(replaced, key)
