"""Backups of the security database: online copy, verification, restore, schedule.

The security database is the one file whose loss locks everyone out (key hashes, roles,
approvals, the audit log). A backup uses SQLite's online backup API in one step: it
reads one consistent snapshot while the services keep writing (WAL readers never block
the writer), and the copy is checked with ``PRAGMA integrity_check`` before it is
given its final name, so a file under ``backups/`` is always a complete, verified copy.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from services.core.files import PRIVATE_FILE_MODE, private_dir, tighten
from services.security.db import BUSY_TIMEOUT_MS, connect
from services.security.migrations import LATEST_VERSION
from services.security.settings import BackupSettings

BACKUP_PREFIX = "security-"
BACKUP_SUFFIX = ".db"
# Tables a security database has from its first migration on: a file without them is
# some other SQLite database, never restored over the real one.
REQUIRED_TABLES = ("schema_migrations", "users", "api_keys", "roles", "audit_log")


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Verified:
    """What a check of a backup file found (all of it fine, or BackupError was raised)."""

    path: Path
    size: int
    integrity: str
    schema_version: int
    users: int
    keys: int
    audit_rows: int


def timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")


def backup_dir(data_dir: Path) -> Path:
    """Where ``ai-suite db backup`` writes by default; nothing ever deletes these."""
    return Path(data_dir) / "backups"


def scheduled_backup_dir(data_dir: Path) -> Path:
    """The scheduled backups, pruned to AI_SUITE_BACKUP_KEEP: a directory of their own, so
    the retention never deletes a backup somebody took by hand (before a deployment)."""
    return backup_dir(data_dir) / "scheduled"


def default_backup_path(directory: Path, now: datetime | None = None) -> Path:
    """``directory/security-YYYYmmddTHHMMSS.db``; ``-2``, ``-3``… if taken."""
    directory = Path(directory)
    stem = f"{BACKUP_PREFIX}{timestamp(now)}"
    path = directory / f"{stem}{BACKUP_SUFFIX}"
    number = 2
    while path.exists():
        path = directory / f"{stem}-{number}{BACKUP_SUFFIX}"
        number += 1
    return path


def _read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    return conn


def verify(path: Path) -> Verified:
    """Check that ``path`` is a sound security database this version can use.

    ``integrity_check`` reads every page; the schema version must be one this code
    knows (a file from a newer version would be downgraded silently by a restore).
    """
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        conn = _read_only(path)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            missing = [table for table in REQUIRED_TABLES if table not in tables]
            if problems != ["ok"]:
                raise BackupError(
                    f"{path} fails PRAGMA integrity_check: {'; '.join(problems[:5])}"
                    " (use another backup)"
                )
            if missing:
                raise BackupError(
                    f"{path} is not a security database (no table {', '.join(missing)})"
                )
            version = int(
                conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[
                    0
                ]
            )
            counts = [
                int(conn.execute(sql).fetchone()[0])
                for sql in (
                    "SELECT COUNT(*) FROM users",
                    "SELECT COUNT(*) FROM api_keys",
                    "SELECT COUNT(*) FROM audit_log",
                )
            ]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from exc
    if not 1 <= version <= LATEST_VERSION:
        raise BackupError(
            f"{path} has schema version {version}, this version of ai-suite knows 1 to"
            f" {LATEST_VERSION}; restore it with the ai-suite version that wrote it"
        )
    return Verified(path, path.stat().st_size, "ok", version, *counts)


def backup(source: Path, destination: Path) -> Verified:
    """Copy the live database ``source`` to ``destination`` (0600), then verify the copy.

    The copy is written under a temporary name and renamed only once verified. It is a
    single self-contained file (rollback journal, no ``-wal``); the services switch it
    back to WAL when they open it after a restore.
    """
    source, destination = Path(source), Path(destination)
    if not source.is_file():
        raise BackupError(f"{source}: no security database to back up (run `ai-suite db migrate`)")
    if destination.exists():
        raise BackupError(f"{destination} exists; choose another path or remove it first")
    private_dir(destination.parent)
    partial = destination.with_name(destination.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    os.close(fd)
    tighten(partial, PRIVATE_FILE_MODE)
    try:
        _copy(connect(source), partial)
        verified = verify(partial)
        os.replace(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return replace(verified, path=destination)


def _copy(src: sqlite3.Connection, partial: Path) -> None:
    """Copy ``src`` into the file ``partial`` (a standalone database) and close ``src``."""
    try:
        dst = sqlite3.connect(str(partial))
        try:
            # pages=-1: the whole database in one step, from one read snapshot. Copying
            # in slices would restart at every commit of the services and might never
            # finish under load.
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest ``security-*.db`` backups in ``directory``."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    backups = sorted(
        (
            path
            for path in Path(directory).glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}")
            if path.is_file()
        ),
        key=lambda path: (path.stat().st_mtime_ns, path.name),
    )
    removed = backups[: max(0, len(backups) - keep)]
    for path in removed:
        path.unlink()
    return removed


@dataclass(frozen=True)
class Restored:
    source: Verified
    target: Path
    replaced: Path | None


def restore(backup_file: Path, target: Path, now: datetime | None = None) -> Restored:
    """Replace the database ``target`` with ``backup_file``; the old file is kept as
    ``security.db.replaced-TIMESTAMP``. The services must be stopped (the caller checks).

    The backup is copied next to the target and verified before the target is touched,
    so a failed copy leaves the database as it was.
    """
    source = verify(backup_file)
    target = Path(target)
    private_dir(target.parent)
    partial = target.with_name(target.name + ".restoring")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    os.close(fd)
    try:
        _copy(_read_only(source.path), partial)
        verify(partial)
        replaced = _set_aside(target, now) if target.exists() else None
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Restored(source, target, replaced)


def _set_aside(target: Path, now: datetime | None) -> Path:
    """Rename the current database to ``NAME.replaced-TIMESTAMP``, whole."""
    # Fold any WAL into the main file first: the old file is kept complete, and a stale
    # -wal can never be replayed onto the restored database.
    conn = connect(target)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise BackupError(
                f"{target} is in use (checkpoint blocked); stop every service using it first"
            )
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()
    replaced = target.with_name(f"{target.name}.replaced-{timestamp(now)}")
    os.replace(target, replaced)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    return replaced


class BackupSchedule:
    """Backs the database up every ``interval_seconds`` and keeps the ``keep`` newest.

    A daemon thread; a failed backup is reported through ``echo`` and retried at the
    next interval (it never stops the platform).
    """

    def __init__(
        self,
        database: Path,
        directory: Path,
        *,
        interval_seconds: float,
        keep: int,
        echo: Callable[[str], None],
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.database = Path(database)
        self.directory = Path(directory)
        self.interval = interval_seconds
        self.keep = keep
        self.echo = echo
        self.taken: list[Verified] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="security-backup", daemon=True)

    def start(self) -> BackupSchedule:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def run_once(self) -> Verified | None:
        try:
            made = backup(self.database, default_backup_path(self.directory))
            removed = prune(self.directory, self.keep)
        except (BackupError, sqlite3.Error, OSError) as exc:
            self.failures += 1
            self.echo(f"error: scheduled backup of {self.database} failed: {exc}")
            return None
        self.taken.append(made)
        self.echo(
            f"backup: {made.path} ({made.size} bytes, integrity ok)"
            + (f", removed {len(removed)} old backup(s)" if removed else "")
        )
        return made

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()


def start_scheduled_backups(
    settings: BackupSettings, echo: Callable[[str], None]
) -> BackupSchedule | None:
    """The schedule ``ai-suite up`` runs (AI_SUITE_BACKUP_INTERVAL_HOURS; 0 = off)."""
    hours = settings.backup_interval_hours
    if hours <= 0:
        return None
    schedule = BackupSchedule(
        settings.security_db_path,
        scheduled_backup_dir(settings.data_dir),
        interval_seconds=hours * 3600,
        keep=settings.backup_keep,
        echo=echo,
    )
    echo(f"backups: every {hours:g} h to {schedule.directory}, keeping {settings.backup_keep}")
    return schedule.start()
