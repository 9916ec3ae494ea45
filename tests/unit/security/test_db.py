"""SQLite access: pragmas, transactions, data_version and close()."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.security.db import BUSY_TIMEOUT_MS, Database, WouldBlock, connect


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Database]:
    """An un-migrated database with one small table."""
    database = Database(tmp_path / "plain.db")
    database.connection().execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    yield database
    database.close()


def pragma(conn: sqlite3.Connection, name: str) -> object:
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_pragmas(plain: Database) -> None:
    conn = plain.connection()
    assert pragma(conn, "journal_mode") == "wal"
    assert pragma(conn, "foreign_keys") == 1
    assert pragma(conn, "busy_timeout") == BUSY_TIMEOUT_MS
    assert pragma(conn, "synchronous") == 1  # NORMAL
    assert conn.row_factory is sqlite3.Row
    assert conn.isolation_level is None


def test_custom_busy_timeout(tmp_path: Path) -> None:
    database = Database(tmp_path / "x.db", busy_timeout_ms=1234)
    try:
        assert pragma(database.connection(), "busy_timeout") == 1234
    finally:
        database.close()


def test_parent_directories_are_created(tmp_path: Path) -> None:
    database = Database(tmp_path / "a" / "b" / "c.db")
    try:
        database.query_one("SELECT 1")
        assert (tmp_path / "a" / "b" / "c.db").exists()
    finally:
        database.close()


def test_foreign_keys_are_enforced(plain: Database) -> None:
    conn = plain.connection()
    conn.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, t_id INTEGER REFERENCES t(id))")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        conn.execute("INSERT INTO child (t_id) VALUES (42)")


def test_one_connection_per_thread(plain: Database) -> None:
    mine = plain.connection()
    assert plain.connection() is mine
    theirs: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: theirs.append(plain.connection()))
    thread.start()
    thread.join()
    assert theirs[0] is not mine


def test_transaction_commits(plain: Database, tmp_path: Path) -> None:
    with plain.transaction() as conn:
        conn.execute("INSERT INTO t (v) VALUES ('a')")
    other = sqlite3.connect(tmp_path / "plain.db")
    try:
        assert other.execute("SELECT v FROM t").fetchall() == [("a",)]
    finally:
        other.close()


def test_transaction_rolls_back_on_error(plain: Database) -> None:
    def fail() -> None:
        with plain.transaction() as conn:
            conn.execute("INSERT INTO t (v) VALUES ('lost')")
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fail()
    assert plain.query("SELECT * FROM t") == []
    assert not plain.connection().in_transaction
    with plain.transaction() as conn:  # the connection is usable afterwards
        conn.execute("INSERT INTO t (v) VALUES ('kept')")
    assert [r["v"] for r in plain.query("SELECT v FROM t")] == ["kept"]


def test_transaction_rolls_back_on_sql_error(plain: Database) -> None:
    def fail() -> None:
        with plain.transaction() as conn:
            conn.execute("INSERT INTO t (id, v) VALUES (1, 'a')")
            conn.execute("INSERT INTO t (id, v) VALUES (1, 'duplicate')")

    with pytest.raises(sqlite3.IntegrityError):
        fail()
    assert plain.query("SELECT * FROM t") == []


def test_transaction_takes_the_write_lock_up_front(plain: Database, tmp_path: Path) -> None:
    impatient = Database(tmp_path / "plain.db", busy_timeout_ms=50)
    try:
        with plain.transaction():
            with pytest.raises(sqlite3.OperationalError, match="locked"):  # noqa: SIM117
                with impatient.transaction():
                    pass
            # Readers are not blocked by the writer (WAL).
            assert impatient.query("SELECT COUNT(*) FROM t")[0][0] == 0
    finally:
        impatient.close()


def test_query_helpers(plain: Database) -> None:
    with plain.transaction() as conn:
        conn.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",)])
    rows = plain.query("SELECT v FROM t WHERE v > ? ORDER BY v", ("",))
    assert [row["v"] for row in rows] == ["a", "b"]
    assert plain.query_one("SELECT v FROM t WHERE v = :v", {"v": "b"})["v"] == "b"
    assert plain.query_one("SELECT v FROM t WHERE v = 'zzz'") is None


def test_data_version_changes_after_writes_from_any_connection(
    plain: Database, tmp_path: Path
) -> None:
    path = tmp_path / "plain.db"
    version = plain.data_version()
    assert plain.data_version() == version  # stable while nothing is written

    raw = connect(path)
    try:
        raw.execute("INSERT INTO t (v) VALUES ('from another connection')")
    finally:
        raw.close()
    after_raw = plain.data_version()
    assert after_raw != version

    other = Database(path)
    try:
        with other.transaction() as conn:
            conn.execute("INSERT INTO t (v) VALUES ('from another Database')")
    finally:
        other.close()
    after_other = plain.data_version()
    assert after_other != after_raw

    with plain.transaction() as conn:  # this object's own connections count too
        conn.execute("INSERT INTO t (v) VALUES ('own')")
    assert plain.data_version() != after_other


def test_data_version_from_another_thread(plain: Database) -> None:
    version = plain.data_version()

    def write() -> None:
        with plain.transaction() as conn:
            conn.execute("INSERT INTO t (v) VALUES ('thread')")

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    assert plain.data_version() != version


def test_close_then_use_raises(tmp_path: Path) -> None:
    database = Database(tmp_path / "c.db")
    conn = database.connection()
    database.data_version()
    database.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")  # the connection itself is closed
    with pytest.raises(RuntimeError, match="closed"):
        database.connection()
    with pytest.raises(RuntimeError, match="closed"):
        database.query("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        database.data_version()
    with pytest.raises(RuntimeError, match="closed"), database.transaction():
        pass
    database.close()  # idempotent


def test_close_also_refuses_other_threads(tmp_path: Path) -> None:
    database = Database(tmp_path / "c.db")
    ready, closed = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        database.connection()
        ready.set()
        closed.wait(5)
        try:
            database.connection()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    ready.wait(5)
    database.close()
    closed.set()
    thread.join()
    assert len(errors) == 1
    assert "closed" in str(errors[0])


def test_connect_on_a_locked_new_file_waits_instead_of_failing(tmp_path: Path) -> None:
    """Switching a new file to WAL while another connection writes must not fail at once."""
    path = tmp_path / "fresh.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE x (a)")
    # A writer on the still rollback-journal file: SQLite answers the journal mode
    # change with SQLITE_BUSY at once, without calling the busy handler.
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO x VALUES (1)")
    released = threading.Timer(0.1, lambda: holder.execute("COMMIT"))
    released.start()
    try:
        conn = connect(path, busy_timeout_ms=3000)
        assert pragma(conn, "journal_mode") == "wal"
        conn.close()
    finally:
        released.join()
        holder.close()


def test_watch_reads_never_wait_when_asked_not_to(plain: Database) -> None:
    with pytest.raises(WouldBlock, match="not open"):  # opening is left to a thread
        plain.data_version(wait=False)
    version = plain.data_version()
    assert plain.data_version(wait=False) == version
    with plain._watch_lock, pytest.raises(WouldBlock, match="in use"):
        plain.data_version(wait=False)
