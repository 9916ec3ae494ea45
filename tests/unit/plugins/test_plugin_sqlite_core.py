"""The SQLite reset core, without pytest: templates, backup restores, deadlines, savepoints."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from ai_suite_pytest.sqlite_reset import (
    ResetError,
    ResetTimeout,
    SavepointBroken,
    SqliteReset,
    TemplateBuildError,
    build_template,
    load_object,
    make_builder,
    restore,
    savepoint,
    worker_id,
)
from ai_suite_pytest.sqlite_reset.core import parse_seed_lines
from prometheus_client import CollectorRegistry

from services.security.audit import AuditEntry, AuditLog
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import migrate
from services.security.rbac import AccessControl, AuthError


def add_admin(db: Database) -> None:
    KeyStore(db).create_key("root", "admin")


@pytest.fixture(scope="module")
def reset_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteReset]:
    service = SqliteReset(
        make_builder(migrate, Database, {"admin": add_admin}),
        tmp_path_factory.mktemp("reset"),
        deadline_s=0.2,
    )
    yield service
    service.close()


def count(db: Database, table: str) -> int:
    row = db.query_one(f"SELECT COUNT(*) FROM {table}")
    assert row is not None
    return int(row[0])


def test_reset_restores_the_template_under_an_open_connection(reset_service) -> None:
    path = reset_service.fresh_worker_db()
    db = Database(path)
    try:
        access = AccessControl(db, CollectorRegistry())
        key = KeyStore(db).create_key("alice", "developer").key
        assert access.authenticate(key).user == "alice"  # now cached
        reset_service.fresh_worker_db()
        assert count(db, "users") == 0
        with pytest.raises(AuthError, match="invalid API key"):
            access.authenticate(key)  # data_version moved, so the cache was flushed
        assert db.query_one("PRAGMA journal_mode")[0] == "wal"
    finally:
        db.close()


def test_autoincrement_counters_start_over(reset_service) -> None:
    path = reset_service.fresh_worker_db()
    db = Database(path)
    try:
        log = AuditLog(db, CollectorRegistry())
        first = log.write(AuditEntry(action="a", outcome="ok"))
        log.write(AuditEntry(action="b", outcome="ok"))
        reset_service.fresh_worker_db()
        assert log.write(AuditEntry(action="c", outcome="ok")) == first  # sqlite_sequence reset
    finally:
        db.close()


def test_named_seed_and_default_templates_differ(reset_service) -> None:
    seeded = Database(reset_service.fresh_worker_db("admin"))
    try:
        assert count(seeded, "users") == 1
        assert count(seeded, "roles") == 3
    finally:
        seeded.close()
    with pytest.raises(KeyError, match=r"unknown seed 'nope'; known seeds: admin, default"):
        reset_service.template("nope")


def test_deserialized_connections_are_private_copies(reset_service) -> None:
    one, two = reset_service.connect(), reset_service.connect()
    try:
        one.execute("DELETE FROM role_permissions")
        assert two.execute("SELECT COUNT(*) FROM role_permissions").fetchone()[0] > 0
    finally:
        one.close()
        two.close()


@contextmanager
def write_transaction_elsewhere(path: Path, *statements: str) -> Iterator[None]:
    """Another connection holds ``path``'s write lock (after ``statements``, uncommitted)."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        for statement in statements:
            holder.execute(statement)
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_held_write_lock_fails_by_the_deadline_naming_file_and_holder(reset_service) -> None:
    path = reset_service.fresh_worker_db()
    with write_transaction_elsewhere(path):
        with pytest.raises(ResetTimeout) as info:
            reset_service.fresh_worker_db()
        message = str(info.value)
        assert str(path.resolve()) in message
        assert "this pytest process" in message
        assert "sqlite_reset_deadline" in message
    reset_service.fresh_worker_db()  # the lock is gone, so the next reset works


def test_a_database_nobody_changed_is_not_copied_again(reset_service) -> None:
    path = reset_service.fresh_worker_db()
    assert reset_service.reset(path).unchanged  # nothing wrote since the last reset
    db = Database(path)
    try:
        KeyStore(db).create_key("alice", "developer")  # another connection commits
        after_write = reset_service.reset(path)
        assert not after_write.unchanged
        assert count(db, "users") == 0
        assert reset_service.reset(path).unchanged
        assert not reset_service.reset(path, "admin").unchanged  # another template
        assert count(db, "users") == 1
    finally:
        db.close()


def test_an_open_write_transaction_elsewhere_is_not_taken_for_unchanged(reset_service) -> None:
    path = reset_service.fresh_worker_db()
    # A change not committed yet: the file is not "unchanged", and its lock is held.
    with (
        write_transaction_elsewhere(path, "DELETE FROM role_permissions"),
        pytest.raises(ResetTimeout),
    ):
        reset_service.reset(path)


def test_replaced_file_is_reopened_not_reset_through_a_stale_handle(reset_service) -> None:
    path = reset_service.fresh_worker_db()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)  # no connection is open in this test
    reset_service.fresh_worker_db()
    db = Database(path)
    try:
        assert count(db, "roles") == 3
    finally:
        db.close()


def test_page_size_mismatch_is_refused(reset_service, tmp_path: Path) -> None:
    target = sqlite3.connect(tmp_path / "big.db", isolation_level=None)
    try:
        target.execute("PRAGMA page_size = 8192")
        target.execute("CREATE TABLE t (x)")
        with pytest.raises(ResetError, match="page size is 8192 bytes but template"):
            restore(reset_service.template(), target, path="big.db")
    finally:
        target.close()


def test_reset_refuses_a_connection_inside_a_transaction(reset_service) -> None:
    target = sqlite3.connect(":memory:", isolation_level=None)
    try:
        target.execute("BEGIN")
        with pytest.raises(ResetError, match="inside a transaction"):
            restore(reset_service.template(), target)
    finally:
        target.close()


def test_build_with_a_leaked_connection_is_reported(tmp_path: Path) -> None:
    leaked: list[Database] = []

    def leaky(path: Path, _seed: str) -> None:
        db = Database(path)
        migrate(db)
        leaked.append(db)

    try:
        with pytest.raises(TemplateBuildError, match="left a connection open"):
            build_template(leaky, tmp_path)
    finally:
        leaked[0].close()


def test_build_that_creates_nothing_is_reported(tmp_path: Path) -> None:
    with pytest.raises(TemplateBuildError, match="created no database"):
        build_template(lambda _path, _seed: None, tmp_path)


def test_savepoint_rolls_back_and_detects_commits() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute("CREATE TABLE t (x)")
        with savepoint(conn):
            conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
        with pytest.raises(SavepointBroken, match="committed"), savepoint(conn):
            conn.execute("COMMIT")
    finally:
        conn.close()


def test_load_object_and_seed_lines() -> None:
    assert load_object("services.security.migrations:migrate") is migrate
    with pytest.raises(ValueError, match=r"expected 'package\.module:attribute'"):
        load_object("services.security.migrations")
    with pytest.raises(ValueError, match="cannot import"):
        load_object("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        load_object("services.security.migrations:nope")
    assert parse_seed_lines(["admin = a.b:c", "", "x=y:z"]) == {"admin": "a.b:c", "x": "y:z"}
    with pytest.raises(ValueError, match="is not 'name = module:function'"):
        parse_seed_lines(["admin a.b:c"])


def test_worker_id_follows_xdist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert worker_id() == "gw3"
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert worker_id() == "main"
