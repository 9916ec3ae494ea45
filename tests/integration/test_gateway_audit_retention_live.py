"""The gateway's retention task on a real socket: old rows archived at start, counted in
``audit_archived_rows_total``; an archive directory it cannot write keeps the rows and
raises ``audit_archive_failures_total`` (what AuditArchiveFailing alerts on)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from services.security.audit import AuditEntry, AuditLog
from services.security.audit_archive import list_archives
from services.security.db import Database
from tests.support.processes import wait_until


def _old_rows(db_path: Path, count: int, days: int) -> None:
    db = Database(db_path)
    try:
        log = AuditLog(db, CollectorRegistry())
        for _ in range(count):
            log.write(AuditEntry(action="chat:create", outcome="ok", user="alice"))
        stamp = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="microseconds")
        with db.transaction() as conn:
            conn.execute("UPDATE audit_log SET ts = ? WHERE user_name = 'alice'", (stamp,))
    finally:
        db.close()


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10, trust_env=False).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def _alice_rows(db_path: Path) -> int:
    db = Database(db_path)
    try:
        return int(db.query_one("SELECT COUNT(*) FROM audit_log WHERE user_name='alice'")[0])
    finally:
        db.close()


def test_the_gateway_archives_old_rows_at_start(
    start_gateway: Callable[..., str], keys, tmp_path: Path
) -> None:
    keys.create("admin", "admin")  # migrates the database
    _old_rows(keys.db_path, 25, days=40)
    url = start_gateway(audit_retention_days=30, audit_archive_batch_rows=10)
    assert wait_until(lambda: _metric(url, "audit_archived_rows_total") == 25, timeout=30)
    assert _alice_rows(keys.db_path) == 0
    infos = list_archives(tmp_path / "data" / "audit-archive")
    assert [(i.rows, i.checksum) for i in infos] == [(10, "OK"), (10, "OK"), (5, "OK")]
    assert _metric(url, "audit_archive_failures_total") == 0


def test_an_unwritable_archive_directory_keeps_the_rows_and_counts(
    start_gateway: Callable[..., str], keys, tmp_path: Path
) -> None:
    keys.create("admin", "admin")
    _old_rows(keys.db_path, 5, days=40)
    (tmp_path / "data" / "audit-archive").write_text("a file where the directory should be")
    url = start_gateway(audit_retention_days=30, audit_archive_interval_seconds=0.2)
    # Tried again every interval: the counter keeps rising while the cause stays.
    assert wait_until(lambda: _metric(url, "audit_archive_failures_total") >= 2, timeout=30)
    assert _alice_rows(keys.db_path) == 5
    assert _metric(url, "audit_archived_rows_total") == 0


def test_retention_zero_archives_nothing(
    start_gateway: Callable[..., str], keys, tmp_path: Path
) -> None:
    keys.create("admin", "admin")
    _old_rows(keys.db_path, 3, days=4000)
    url = start_gateway(audit_retention_days=0)
    assert httpx.get(f"{url}/ready", timeout=10, trust_env=False).status_code == 200
    assert _alice_rows(keys.db_path) == 3
    assert not (tmp_path / "data" / "audit-archive").exists()
