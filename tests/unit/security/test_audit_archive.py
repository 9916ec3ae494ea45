"""Audit retention: rows older than the retention age move to checksummed gzip JSONL files,
durable before the rows are deleted; a failure keeps the rows and counts; a crash between
the file and the delete leaves a duplicate that the next run settles without a copy."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.security.audit import STARTED, AuditEntry, AuditLog, ProcessOwner
from services.security.audit_archive import (
    ArchiveError,
    ArchiveMetrics,
    AuditArchiver,
    list_archives,
    run_periodically,
)
from services.security.db import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _write(db: Database, count: int, age: timedelta, action: str = "chat:create") -> list[int]:
    log = AuditLog(db, CollectorRegistry())
    ids = [log.write(AuditEntry(action=action, outcome="ok", user="alice")) for _ in range(count)]
    stamp = (NOW - age).isoformat(timespec="microseconds")
    with db.transaction() as conn:
        conn.executemany("UPDATE audit_log SET ts = ? WHERE id = ?", [(stamp, i) for i in ids])
    return ids


def _archiver(db: Database, directory: Path, **kwargs) -> AuditArchiver:
    kwargs.setdefault("retention_days", 90)
    return AuditArchiver(db, directory, now=lambda: NOW, **kwargs)


def _archived_ids(directory: Path) -> list[int]:
    ids = []
    for path in sorted(directory.glob("audit-*.jsonl.gz")):
        ids += [json.loads(line)["id"] for line in gzip.decompress(path.read_bytes()).splitlines()]
    return ids


def _ids(db: Database) -> set[int]:
    return {row["id"] for row in db.query("SELECT id FROM audit_log")}


def test_rows_past_the_retention_age_are_archived_then_deleted(
    db: Database, tmp_path: Path
) -> None:
    old = _write(db, 10, timedelta(days=91))
    young = _write(db, 3, timedelta(days=89))
    metrics = ArchiveMetrics(CollectorRegistry())
    batches = _archiver(db, tmp_path / "archive", batch_rows=4, metrics=metrics).run()
    assert [b.rows for b in batches] == [4, 4, 2]
    assert _ids(db) == set(young)
    assert _archived_ids(tmp_path / "archive") == old
    assert metrics.archived._value.get() == 10
    infos = list_archives(tmp_path / "archive")
    assert [(i.first_id, i.last_id, i.rows, i.checksum) for i in infos] == [
        (old[0], old[3], 4, "OK"),
        (old[4], old[7], 4, "OK"),
        (old[8], old[9], 2, "OK"),
    ]
    assert infos[0].first_ts == (NOW - timedelta(days=91)).isoformat(timespec="microseconds")
    # A checksum sidecar sha256sum can check, and private files.
    sidecar = infos[0].path.with_name(infos[0].path.name + ".sha256")
    assert sidecar.read_text().endswith(f"  {infos[0].path.name}\n")
    assert oct(infos[0].path.stat().st_mode & 0o777) == "0o600"


def test_the_rows_in_a_file_are_the_rows_as_the_api_shows_them(
    db: Database, tmp_path: Path
) -> None:
    _write(db, 1, timedelta(days=100))
    _archiver(db, tmp_path).run()
    (row,) = [
        json.loads(x)
        for x in gzip.decompress(next(tmp_path.glob("*.gz")).read_bytes()).splitlines()
    ]
    assert row["user"] == "alice"
    assert row["action"] == "chat:create"
    assert isinstance(row["details"], dict)


def test_retention_zero_keeps_everything(db: Database, tmp_path: Path) -> None:
    _write(db, 3, timedelta(days=3650))
    assert _archiver(db, tmp_path / "archive", retention_days=0).run() == []
    assert len(_ids(db)) == 3
    assert not (tmp_path / "archive").exists()


def test_the_retention_age_is_probed_on_both_sides(db: Database, tmp_path: Path) -> None:
    just_older = _write(db, 1, timedelta(days=30, seconds=1))
    just_younger = _write(db, 1, timedelta(days=30) - timedelta(seconds=1))
    _archiver(db, tmp_path, retention_days=30).run()
    assert _ids(db) == set(just_younger)
    assert _archived_ids(tmp_path) == just_older


def test_an_open_call_keeps_its_intent_row(db: Database, tmp_path: Path) -> None:
    log = AuditLog(db, CollectorRegistry())
    with log.transaction() as tx:
        intent = tx.begin_call(
            AuditEntry(action="tool:run_command", outcome=STARTED, call_id="c1"),
            ProcessOwner.current("mcp"),
        )
    closed = _write(db, 2, timedelta(days=200))
    with db.transaction() as conn:
        conn.execute("UPDATE audit_log SET ts = ? WHERE id = ?", ("2020-01-01T00:00:00", intent))
    _archiver(db, tmp_path).run()
    assert _ids(db) == {intent}
    assert _archived_ids(tmp_path) == closed


def _failing_dir(tmp_path: Path, how: str) -> Path:
    if how == "a file in the way":
        path = tmp_path / "archive"
        path.write_text("not a directory")
        return path
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only directory anyway")
    path = tmp_path / "archive"
    path.mkdir()
    path.chmod(0o500)
    return path


@pytest.mark.parametrize("how", ["a file in the way", "read-only directory"])
def test_an_unwritable_archive_keeps_the_rows_and_counts_the_failure(
    db: Database, tmp_path: Path, how: str
) -> None:
    old = _write(db, 5, timedelta(days=100))
    metrics = ArchiveMetrics(CollectorRegistry())
    archiver = _archiver(db, _failing_dir(tmp_path, how), metrics=metrics)
    with pytest.raises(ArchiveError, match="the rows are kept"):
        archiver.run()
    assert _ids(db) == set(old)
    assert metrics.failures._value.get() == 1
    assert metrics.archived._value.get() == 0
    # The database is usable afterwards (the batch's transaction was rolled back).
    _write(db, 1, timedelta(0))


class Crash(BaseException):
    """What the process dying looks like to the code after the files are durable."""


def test_a_crash_between_file_and_delete_leaves_a_duplicate_that_the_next_run_settles(
    db: Database, tmp_path: Path
) -> None:
    old = _write(db, 6, timedelta(days=100))

    def crash(_batch) -> None:
        raise Crash

    with pytest.raises(Crash):
        _archiver(db, tmp_path, batch_rows=4, after_files_durable=crash).run()
    assert _ids(db) == set(old), "rows deleted before their archive was committed"
    (left,) = list(tmp_path.glob("*.gz"))
    first_bytes = left.read_bytes()
    # More rows became old meanwhile; the next run re-archives the crashed batch's exact
    # id range (same file, same bytes), then goes on.
    _archiver(db, tmp_path, batch_rows=5).run()
    assert left.read_bytes() == first_bytes
    assert _ids(db) == set()
    assert sorted(_archived_ids(tmp_path)) == old  # every row once, none twice
    assert all(info.ok for info in list_archives(tmp_path))


def test_a_changed_file_is_reported_bad(db: Database, tmp_path: Path) -> None:
    _write(db, 3, timedelta(days=100))
    _archiver(db, tmp_path).run()
    (path,) = list(tmp_path.glob("*.gz"))
    data = bytearray(path.read_bytes())
    data[-12] ^= 0xFF
    path.write_bytes(bytes(data))
    (info,) = list_archives(tmp_path)
    assert info.checksum == "BAD"
    assert not info.ok
    path.with_name(path.name + ".sha256").unlink()
    assert list_archives(tmp_path)[0].checksum == "MISSING"


@pytest.mark.anyio
async def test_stopping_the_gateway_lets_the_batch_in_progress_finish(
    db: Database, tmp_path: Path
) -> None:
    old = _write(db, 6, timedelta(days=100))
    entered, release = threading.Event(), threading.Event()

    def hold(_batch) -> None:
        entered.set()
        release.wait()

    archiver = _archiver(db, tmp_path, batch_rows=2, after_files_durable=hold)
    task = asyncio.create_task(run_periodically(archiver, 3600))
    await asyncio.to_thread(entered.wait)
    task.cancel()
    await asyncio.sleep(0)  # the cancellation reaches the task while the batch is held
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The held batch committed; no batch started after the stop.
    assert _ids(db) == set(old[2:])
    assert _archived_ids(tmp_path) == old[:2]
