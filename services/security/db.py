"""SQLite access for the security database.

WAL mode so readers never block the writer, a busy timeout so concurrent
writers wait instead of failing, and foreign keys enforced. Each thread gets its
own connection; one extra read-only "watch" connection reports
``PRAGMA data_version`` so caches notice writes made by any connection, in this
process or another (including a test resetting the file).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.core.files import PRIVATE_FILE_MODE, private_dir, private_file, tighten

BUSY_TIMEOUT_MS = 5000


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
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


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

    def data_version(self) -> int:
        """Changes whenever any other connection commits to the file."""
        with self._lock:
            if self._watch is None:
                if self._closed:
                    raise RuntimeError(f"database {self.path} is closed")
                self._watch = connect(
                    self.path, busy_timeout_ms=self.busy_timeout_ms, synchronous=self.synchronous
                )
            return int(self._watch.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [*self._all, *([self._watch] if self._watch else [])]
            self._all.clear()
            self._watch = None
        for conn in conns:
            conn.close()
        self._local = threading.local()
