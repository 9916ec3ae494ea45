"""SQLite access for the security database.

WAL mode so readers never block the writer, a busy timeout so concurrent
writers wait instead of failing, and foreign keys enforced. Each thread gets its
own connection; one extra read-only "watch" connection reports
``PRAGMA data_version`` so caches notice writes made by any connection, in this
process or another (including a test resetting the file).

The watch connection can also be asked from the event loop (``wait=False``): it then
answers only if it can without waiting (its lock free, SQLite not busy) and raises
``WouldBlock`` otherwise, so the caller goes to a thread instead of stalling the loop.
In WAL mode reading ``data_version`` is a read of the shared-memory index (a few
microseconds), never a wait for a writer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from services.core.files import PRIVATE_FILE_MODE, private_dir, private_file, tighten

T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000
_RETRY_SLEEP = 0.005


class WouldBlock(Exception):
    """Answering now would wait (for another thread or for SQLite); ask from a thread."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _retry_busy(fn: Callable[[], T], busy_timeout_ms: int) -> T:
    """``fn()``, retried while SQLite says busy, for up to ``busy_timeout_ms``.

    For statements SQLite does not call its busy handler for (a journal mode change),
    and for the watch connection, whose own busy timeout is 0 so that the event loop
    can ask it without ever waiting.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(_RETRY_SLEEP)


def connect(
    path: Path | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, synchronous: str = "NORMAL"
) -> sqlite3.Connection:
    """Open a connection with the platform's pragmas applied.

    ``synchronous="OFF"`` is for disposable state only (the fairness limits): no fsync
    at all, so a new file costs about 2 ms instead of about 30; a crash of the operating
    system may then lose or damage the file, never an application crash.
    """
    if synchronous not in ("NORMAL", "OFF"):
        raise ValueError(f"synchronous must be NORMAL or OFF, got {synchronous!r}")
    conn = sqlite3.connect(
        str(path),
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,  # explicit transactions only, see Database.transaction
        check_same_thread=False,
    )
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        if synchronous == "OFF":  # before the switch to WAL, which would sync otherwise
            conn.execute("PRAGMA synchronous = OFF")
        _enable_wal(conn, busy_timeout_ms)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Switch to WAL, waiting like busy_timeout would.

    SQLite does not call the busy handler for a journal mode change, so two
    processes opening a new file at once would otherwise fail with "database is
    locked" (seen when two migrations start together on a new file).
    """
    _retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"), busy_timeout_ms)


class Database:
    """Thread-local connections to one SQLite file."""

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        synchronous: str = "NORMAL",
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        # Key hashes, the audit log and approvals: only our user may read them. SQLite
        # creates -wal and -shm with the database file's mode, so 0600 carries over;
        # files left wider by an older version are tightened here.
        private_dir(self.path.parent)
        private_file(self.path)
        for suffix in ("-wal", "-shm"):
            tighten(Path(f"{self.path}{suffix}"), PRIVATE_FILE_MODE)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()
        self._closed = False

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError(f"database {self.path} is closed")
            conn = connect(
                self.path, busy_timeout_ms=self.busy_timeout_ms, synchronous=self.synchronous
            )
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error.

        IMMEDIATE takes the write lock up front, so two writers never deadlock
        upgrading from read to write locks.
        """
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full, I/O error) can leave the transaction open; the
            # next BEGIN on this thread's connection would then fail forever.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.connection().execute(sql, params).fetchone()

    def data_version(self, *, wait: bool = True) -> int:
        """Changes whenever any other connection commits to the file.

        ``wait=False`` (the event loop): raises ``WouldBlock`` instead of waiting.
        """
        return int(self.watch_query_one("PRAGMA data_version", wait=wait)[0])

    def watch_query_one(self, sql: str, params: tuple = (), *, wait: bool = True) -> sqlite3.Row:
        """One row of a read on the watch connection (``data_version`` and small reads
        that go with it). ``wait=False`` raises ``WouldBlock`` rather than wait for its
        lock, for SQLite, or to open the connection (opening happens in a thread)."""
        if not self._watch_lock.acquire(blocking=wait):
            raise WouldBlock("the watch connection is in use")
        try:
            watch = self._watch
            if watch is None:
                if not wait:
                    raise WouldBlock("the watch connection is not open yet")
                watch = self._open_watch()
            if not wait:
                try:
                    row = watch.execute(sql, params).fetchone()
                except sqlite3.OperationalError as exc:
                    if _is_busy(exc):
                        raise WouldBlock(str(exc)) from exc
                    raise
            else:
                row = _retry_busy(
                    lambda: watch.execute(sql, params).fetchone(), self.busy_timeout_ms
                )
        finally:
            self._watch_lock.release()
        if row is None:  # pragma: no cover - callers ask for rows that always exist
            raise LookupError(f"no row for {sql!r}")
        return row

    def _open_watch(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"database {self.path} is closed")
            # Busy timeout 0: the event loop asks this connection and must never sleep in
            # SQLite's busy handler; waiting callers retry in _retry_busy instead.
            watch = connect(
                self.path, busy_timeout_ms=self.busy_timeout_ms, synchronous=self.synchronous
            )
            watch.execute("PRAGMA busy_timeout = 0")
            self._watch = watch
            return watch

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection (a thread that is about to end)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()

    def close(self) -> None:
        with self._watch_lock, self._lock:
            self._closed = True
            conns = [*self._all, *([self._watch] if self._watch else [])]
            self._all.clear()
            self._watch = None
        for conn in conns:
            conn.close()
        self._local = threading.local()
