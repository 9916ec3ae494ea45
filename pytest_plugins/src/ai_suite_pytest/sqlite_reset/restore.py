"""Restoring a template into a database that other connections may hold open.

The online backup API writes the template's pages *through* SQLite, inside one
write transaction on the target: connections in this or any other process keep
their file handles, see the new content at their next read transaction, and
see ``PRAGMA data_version`` move. Copying or deleting the database, ``-wal`` or
``-shm`` files instead leaves those connections with stale or mixed pages.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ai_suite_pytest.sqlite_reset.holders import holders_of
from ai_suite_pytest.sqlite_reset.template import Template

DEFAULT_DEADLINE_S = 5.0
# How long one backup step waits for the write lock before the deadline is checked again.
_STEP_WAIT_MS = 10
_RETRY_SLEEP_S = 0.002


class ResetError(RuntimeError):
    """The database could not be restored; the message says why and what to do."""


class ResetTimeout(ResetError):
    """Another connection held the write lock past the deadline."""


class _DeadlinePassed(Exception):
    pass


def restore(
    template: Template,
    target: sqlite3.Connection,
    *,
    path: Path | str = "<connection>",
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> None:
    """Replace the content of ``target``'s database with the template (online backup API).

    Raises :class:`ResetTimeout` naming the file and the processes holding it when
    the write lock cannot be taken within ``deadline_s``.
    """
    if target.in_transaction:
        raise ResetError(f"cannot reset {path}: the reset connection is inside a transaction")
    page_size = int(target.execute("PRAGMA page_size").fetchone()[0])
    pages = int(target.execute("PRAGMA page_count").fetchone()[0])
    if pages and page_size != template.page_size:
        raise ResetError(
            f"cannot reset {path}: its page size is {page_size} bytes but template "
            f"{template.name!r} uses {template.page_size}; a WAL database cannot change page "
            "size, so build the template with the same PRAGMA page_size as the live database"
        )
    started = time.monotonic()

    def progress(status: int, _remaining: int, _total: int) -> None:
        # Python's backup() retries BUSY/LOCKED forever; this is the only way to stop it.
        busy = status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        if busy and time.monotonic() - started > deadline_s:
            raise _DeadlinePassed

    try:
        template.connection.backup(target, pages=-1, progress=progress, sleep=_RETRY_SLEEP_S)
    except _DeadlinePassed:
        holders = holders_of(Path(path)) if str(path) != "<connection>" else []
        hint = "; ".join(holders) if holders else "no holder found (it may have just finished)"
        raise ResetTimeout(
            f"could not reset {path} within {deadline_s:g}s: another connection holds the "
            f"write lock (a service or the test itself is inside a write transaction). "
            f"Processes with the file open: {hint}. Finish or roll back that transaction, "
            "or raise the deadline (ini option sqlite_reset_deadline)."
        ) from None


@dataclass
class _Opened:
    conn: sqlite3.Connection
    identity: tuple[int, int]
    # What the last reset left: (template, PRAGMA data_version seen right after it).
    restored: tuple[int, int] | None = None


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _write_lock_is_free(conn: sqlite3.Connection) -> bool:
    """Whether no other connection is inside a write transaction (checked by taking the
    lock for an instant; in WAL mode that reads and writes nothing)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    conn.execute("ROLLBACK")
    return True


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


class LiveTargets:
    """One reset connection per database file, reopened if the file was replaced.

    Keeping the connection open makes a reset cost one backup and nothing else;
    checking the inode first means a file deleted and recreated by the code under
    test is never "reset" through a connection to the old, unlinked file.

    A database nobody changed since its last reset is not copied again: ``PRAGMA
    data_version`` on the reset connection moves with every commit by any other
    connection, in this process or another, and the write lock is checked to be
    free so that a transaction still open elsewhere gets the usual deadline error.
    """

    def __init__(self, *, journal_mode: str | None = None) -> None:
        self._journal_mode = journal_mode
        self._open: dict[Path, _Opened] = {}
        self._lock = threading.Lock()

    def connection(self, path: Path) -> sqlite3.Connection:
        return self._opened(path).conn

    def _opened(self, path: Path) -> _Opened:
        path = Path(path).resolve()
        opened = self._open.get(path)
        if opened is not None and _identity(path) == opened.identity:
            return opened
        if opened is not None:
            opened.conn.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=_STEP_WAIT_MS / 1000
        )
        try:
            if self._journal_mode:
                # Safe on a live file: SQLite refuses the change instead of corrupting it.
                conn.execute(f"PRAGMA journal_mode = {self._journal_mode}")
            # Test databases need no durability: without fsync a reset costs a fraction
            # of a millisecond instead of several (other connections still see it at once).
            conn.execute("PRAGMA synchronous = OFF")
            # An empty file is created lazily; touch the schema so the inode exists now.
            conn.execute("PRAGMA schema_version").fetchone()
        except BaseException:
            conn.close()
            raise
        identity = _identity(path)
        assert identity is not None  # sqlite3.connect created it
        opened = self._open[path] = _Opened(conn, identity)
        return opened

    def restore(self, template: Template, path: Path, *, deadline_s: float) -> bool:
        """Restore ``path`` to ``template``; False when it was unchanged since the last one."""
        with self._lock:
            opened = self._opened(path)
            conn = opened.conn
            before = _data_version(conn)
            if opened.restored == (id(template), before) and _write_lock_is_free(conn):
                return False
            opened.restored = None
            restore(template, conn, path=path, deadline_s=deadline_s)
            # The backup is this connection's own write, so data_version stays put unless
            # another connection committed meanwhile; then the state is unknown: copy next time.
            if _data_version(conn) == before:
                opened.restored = (id(template), before)
            return True

    def close(self) -> None:
        with self._lock:
            for opened in self._open.values():
                opened.conn.close()
            self._open.clear()


class SavepointBroken(ResetError):
    """The code under test committed, so rolling back the savepoint cannot undo its writes."""


@contextmanager
def savepoint(conn: sqlite3.Connection, name: str = "sqlite_reset") -> Iterator[None]:
    """Undo everything done on ``conn`` inside the block (only for code that never commits).

    Cheapest of all mechanisms, but a ``COMMIT`` or ``ROLLBACK`` by the code under
    test ends the savepoint; that is detected and reported instead of leaking writes.
    """
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    finally:
        if not conn.in_transaction:
            raise SavepointBroken(
                "the code under test committed or rolled back its own transaction, so the "
                "savepoint reset cannot undo its writes; use the backup-based reset instead"
            )
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
