"""The audit log: every entry stored (redacted, bounded) or a loud failure."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.core.context import request_id_var
from services.security.audit import (
    MAX_DETAILS_BYTES,
    AuditEntry,
    AuditLog,
    AuditTransaction,
    AuditWriteError,
)
from services.security.db import Database
from services.security.keys import generate_key


@pytest.fixture
def audit(db: Database, registry: CollectorRegistry) -> AuditLog:
    return AuditLog(db, registry)


def row(db: Database, entry_id: int) -> dict:
    return dict(db.query_one("SELECT * FROM audit_log WHERE id = ?", (entry_id,)))


def test_write_stores_the_entry(audit: AuditLog, db: Database, registry: CollectorRegistry) -> None:
    user_id = db.query_one("SELECT id FROM roles WHERE name = 'admin'")[0]
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO users (id, name, role_id, created_at) VALUES (7, 'alice', ?, 'x')",
            (user_id,),
        )
    token = request_id_var.set("req-audit-1")
    try:
        entry_id = audit.write(
            AuditEntry(
                action="tool:write_file",
                outcome="allowed",
                user="alice",
                user_id=7,
                resource="notes.txt",
                status=200,
                duration_ms=3.5,
                details={"bytes": 12},
            )
        )
    finally:
        request_id_var.reset(token)
    stored = row(db, entry_id)
    assert stored["request_id"] == "req-audit-1"
    assert (stored["user_name"], stored["user_id"], stored["action"]) == (
        "alice",
        7,
        "tool:write_file",
    )
    assert (stored["resource"], stored["outcome"], stored["status"]) == (
        "notes.txt",
        "allowed",
        200,
    )
    assert stored["duration_ms"] == 3.5
    assert json.loads(stored["details"]) == {"bytes": 12}
    assert stored["ts"].endswith("+00:00")
    assert registry.get_sample_value("audit_writes_total") == 1.0
    assert audit.count() == 1


def test_explicit_request_id_wins_and_none_outside_requests(audit: AuditLog, db: Database) -> None:
    token = request_id_var.set("from-context")
    try:
        explicit = audit.write(AuditEntry("a", "ok", request_id="explicit"))
    finally:
        request_id_var.reset(token)
    outside = audit.write(AuditEntry("a", "ok"))
    assert row(db, explicit)["request_id"] == "explicit"
    assert row(db, outside)["request_id"] is None


def test_secrets_in_details_are_never_stored(audit: AuditLog, db: Database, tmp_path: Path) -> None:
    key = generate_key()
    entry_id = audit.write(
        AuditEntry(
            "keys:manage",
            "ok",
            details={
                "key": key,
                "nested": {"list": [f"token_{key}", "Bearer abc.def.ghi"]},
                key: "as a mapping key",
                "headers": {"Authorization": "Bearer zzz-secret", "x-api-key": "plainsecret"},
            },
        )
    )
    details = row(db, entry_id)["details"]
    parsed = json.loads(details)  # redaction keeps it valid JSON
    assert parsed["key"] == "[REDACTED]"
    for secret in (key, "abc.def.ghi", "zzz-secret", "plainsecret"):
        assert secret not in details
    written = b"".join(p.read_bytes() for p in tmp_path.glob("security.db*"))
    assert key.encode() not in written


def test_oversize_details_are_marked_truncated(audit: AuditLog, db: Database) -> None:
    for blob in ("x" * 10_000, "é" * 5_000, '"\\' * 5_000, "😀" * 3_000):
        details = row(db, audit.write(AuditEntry("a", "ok", details={"blob": blob})))["details"]
        parsed = json.loads(details)
        assert parsed["truncated"] is True
        assert parsed["bytes"] > MAX_DETAILS_BYTES
        assert parsed["summary"].startswith('{"blob": ')
        assert len(details.encode()) <= MAX_DETAILS_BYTES


def test_details_at_the_limit_are_kept_whole(audit: AuditLog, db: Database) -> None:
    blob = "y" * (MAX_DETAILS_BYTES - len('{"blob": ""}'))
    details = row(db, audit.write(AuditEntry("a", "ok", details={"blob": blob})))["details"]
    assert json.loads(details) == {"blob": blob}


def test_truncated_summary_has_no_secrets(audit: AuditLog, db: Database) -> None:
    key = generate_key()
    details = row(db, audit.write(AuditEntry("a", "ok", details={"a": key, "b": "x" * 9000})))
    assert key not in details["details"]
    assert json.loads(details["details"])["truncated"] is True


def test_lone_surrogates_are_stored(audit: AuditLog, db: Database) -> None:
    # "\ud800" is legal in a JSON request body, but not encodable as UTF-8.
    details = row(db, audit.write(AuditEntry("a", "ok", details={"path": "bad\ud800name"})))
    assert json.loads(details["details"]) == {"path": "bad\ud800name"}


def test_unserializable_details_are_stringified(audit: AuditLog, db: Database) -> None:
    details = row(db, audit.write(AuditEntry("a", "ok", details={"p": Path("/x")})))["details"]
    assert json.loads(details) == {"p": "/x"}


def refuse_inserts(db: Database) -> None:
    """Make SQLite refuse every audit insert, as a read-only or broken file would."""
    with db.transaction() as conn:
        conn.execute(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log"
            " BEGIN SELECT RAISE(ABORT, 'attempt to write a readonly database'); END"
        )


def test_write_failure_is_refused_and_counted(
    audit: AuditLog,
    db: Database,
    other_db: Database,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    refuse_inserts(other_db)
    with (
        caplog.at_level(logging.ERROR, logger="ai_suite.audit"),
        pytest.raises(AuditWriteError, match="action was refused"),
    ):
        audit.write(AuditEntry("tool:write_file", "allowed"))
    assert registry.get_sample_value("audit_write_failures_total") == 1.0
    assert registry.get_sample_value("audit_writes_total") == 0.0
    assert any("audit write failed" in r.getMessage() for r in caplog.records)
    assert isinstance(next(r for r in caplog.records if r.name == "ai_suite.audit").action, str)

    with other_db.transaction() as conn:
        conn.execute("DROP TRIGGER refuse_audit")
    audit.write(AuditEntry("tool:write_file", "allowed"))  # the writer recovered
    assert audit.count() == 1


def test_write_failure_table_gone(
    audit: AuditLog, db: Database, other_db: Database, registry: CollectorRegistry
) -> None:
    with other_db.transaction() as conn:
        conn.execute("DROP TABLE audit_log")
    with pytest.raises(AuditWriteError, match="no such table") as info:
        audit.write(AuditEntry("a", "ok"))
    assert isinstance(info.value.__cause__, sqlite3.Error)
    assert registry.get_sample_value("audit_write_failures_total") == 1.0


def test_concurrent_writes_lose_nothing(
    audit: AuditLog, db: Database, registry: CollectorRegistry
) -> None:
    threads_n, per_thread = 8, 200
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def work(n: int) -> None:
        try:
            start.wait(10)
            for i in range(per_thread):
                audit.write(AuditEntry("load", "ok", request_id=f"t{n}-{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    total = threads_n * per_thread
    assert audit.count() == total
    distinct = db.query_one("SELECT COUNT(DISTINCT request_id) FROM audit_log")[0]
    assert distinct == total
    assert registry.get_sample_value("audit_writes_total") == float(total)


def test_recent(audit: AuditLog) -> None:
    for i in range(5):
        audit.write(AuditEntry(f"action{i}", "ok"))
    recent = audit.recent(limit=3)
    assert [r["action"] for r in recent] == ["action4", "action3", "action2"]
    assert len(audit.recent()) == 5


# --- group commit ------------------------------------------------------------------------------


async def test_async_writers_each_get_their_own_committed_row(
    audit: AuditLog, db: Database, registry: CollectorRegistry
) -> None:
    async def one(n: int) -> int:
        request_id_var.set(f"req-{n}")  # each task's own context: its own request id
        return await audit.awrite(AuditEntry("load", "ok", details={"n": n}))

    ids = await asyncio.gather(*(one(n) for n in range(64)))
    assert len(set(ids)) == 64
    for n, entry_id in enumerate(ids):
        stored = row(db, entry_id)
        assert (stored["request_id"], json.loads(stored["details"])) == (f"req-{n}", {"n": n})
    assert registry.get_sample_value("audit_writes_total") == 64.0


def submit(audit: AuditLog, fn: Callable[[AuditTransaction], int]) -> Future:
    """A job for the writer, answered through a future (as a thread's caller is)."""
    future = audit._writer.submit(fn).future
    assert future is not None
    return future


def wait_until_taken(audit: AuditLog) -> None:
    """Until the writer has taken every pending job (it then waits for the lock we hold)."""
    while audit._writer._pending:
        threading.Event().wait(0.005)


def test_a_refused_job_rolls_back_alone(
    audit: AuditLog, db: Database, registry: CollectorRegistry
) -> None:
    def refused(tx: AuditTransaction) -> int:
        tx.write(AuditEntry("half", "ok"))
        raise ValueError("the caller's check failed")

    with audit.lock:  # the writer waits: the next jobs pile up into one batch
        first = submit(audit, lambda tx: tx.write(AuditEntry("first", "ok")))
        wait_until_taken(audit)
        jobs = [
            submit(audit, lambda tx: tx.write(AuditEntry("before", "ok"))),
            submit(audit, refused),  # the batch runs again without it...
            submit(audit, lambda tx: tx.write(AuditEntry("after", "ok"))),
            submit(audit, refused),  # ...and the jobs after it in savepoints
            submit(audit, lambda tx: tx.write(AuditEntry("last", "ok"))),
        ]
    assert first.result(30)
    for index in (0, 2, 4):
        assert jobs[index].result(30)
    for index in (1, 3):
        with pytest.raises(ValueError, match="check failed"):
            jobs[index].result(30)
    actions = [r["action"] for r in db.query("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["first", "before", "after", "last"]
    assert registry.get_sample_value("audit_writes_total") == 4.0


def test_a_failed_commit_fails_every_caller_of_its_batch(
    audit: AuditLog, db: Database, other_db: Database, registry: CollectorRegistry
) -> None:
    # A deferred foreign key fails at COMMIT: the statements all succeeded, the batch not.
    with other_db.transaction() as conn:
        conn.execute("CREATE TABLE target (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE guard (ref INTEGER REFERENCES target(id) DEFERRABLE INITIALLY DEFERRED)"
        )
        conn.execute(
            "CREATE TRIGGER poison AFTER INSERT ON audit_log WHEN NEW.action = 'poison'"
            " BEGIN INSERT INTO guard VALUES (42); END"
        )
    with audit.lock:
        first = submit(audit, lambda tx: tx.write(AuditEntry("first", "ok")))
        wait_until_taken(audit)
        batch = [
            submit(audit, lambda tx, a=action: tx.write(AuditEntry(a, "ok")))
            for action in ("before", "poison", "after")
        ]
    assert first.result(30)
    for future in batch:
        with pytest.raises(AuditWriteError, match="FOREIGN KEY") as info:
            future.result(30)
        assert isinstance(info.value.__cause__, sqlite3.Error)
    assert [r["action"] for r in db.query("SELECT action FROM audit_log")] == ["first"]
    assert registry.get_sample_value("audit_write_failures_total") == 3.0
    assert registry.get_sample_value("audit_writes_total") == 1.0
    assert audit.write(AuditEntry("later", "ok"))  # the next batch commits again


def test_transaction_and_the_writer_take_turns(audit: AuditLog, db: Database) -> None:
    with audit.transaction() as tx:
        tx.write(AuditEntry("in transaction", "ok"))
        pending = submit(audit, lambda t: t.write(AuditEntry("group", "ok")))
    assert pending.result(30)
    assert audit.count() == 2


def test_a_job_may_not_wait_for_another_write(audit: AuditLog) -> None:
    with pytest.raises(RuntimeError, match="cannot wait"):
        audit.commit(lambda tx: audit.write(AuditEntry("nested", "ok")))
