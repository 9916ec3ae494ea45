"""``kill -9`` of an archiving process loses no audit row.

A real process archives and is killed: once exactly between "archive file durable" and
"rows deleted" (the window the design must survive), and at seeded random moments
during a long run. After each kill every original row is in the database or in a verified
archive file (a row may be in both: a duplicate, never a loss); a second run finishes
the work and leaves each row in the archives exactly once.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.security.audit import AuditEntry, AuditLog
from services.security.audit_archive import AuditArchiver, list_archives
from services.security.db import Database
from tests.support.keys import migrated_database

ARCHIVER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from services.security.audit_archive import AuditArchiver
    from services.security.db import Database

    db_path, archive_dir, batch, kill_in_window = sys.argv[1:5]

    def die(batch):
        os.kill(os.getpid(), signal.SIGKILL)

    archiver = AuditArchiver(
        Database(db_path),
        Path(archive_dir),
        retention_days=30,
        batch_rows=int(batch),
        after_files_durable=die if kill_in_window == "1" else None,
    )
    print("started", flush=True)
    archiver.run()
    """)


def _seed(db_path: Path, count: int) -> list[int]:
    db = Database(db_path)
    try:
        log = AuditLog(db, CollectorRegistry())
        with log.transaction() as tx:
            ids = [
                tx.write(AuditEntry(action="chat:create", outcome="ok", user=f"u{i % 7}"))
                for i in range(count)
            ]
        stamp = (datetime.now(UTC) - timedelta(days=60)).isoformat(timespec="microseconds")
        with db.transaction() as conn:
            conn.execute("UPDATE audit_log SET ts = ?", (stamp,))
        return ids
    finally:
        db.close()


def _in_db(db_path: Path) -> set[int]:
    db = Database(db_path)
    try:
        return {row["id"] for row in db.query("SELECT id FROM audit_log")}
    finally:
        db.close()


def _in_archives(archive_dir: Path) -> list[int]:
    infos = list_archives(archive_dir) if archive_dir.exists() else []
    assert all(info.ok for info in infos), [i for i in infos if not i.ok]
    ids: list[int] = []
    for info in infos:
        ids += [json.loads(x)["id"] for x in gzip.decompress(info.path.read_bytes()).splitlines()]
    return ids


def _start(db_path: Path, archive_dir: Path, batch: int, kill_in_window: bool):
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            ARCHIVER,
            str(db_path),
            str(archive_dir),
            str(batch),
            "1" if kill_in_window else "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def _finish_and_check(db_path: Path, archive_dir: Path, original: list[int]) -> None:
    db = Database(db_path)
    try:
        AuditArchiver(db, archive_dir, retention_days=30, batch_rows=700).run()
    finally:
        db.close()
    assert _in_db(db_path) == set()
    archived = _in_archives(archive_dir)
    assert sorted(archived) == original, "a row was lost or archived twice"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return migrated_database(tmp_path / "security.db")


def test_kill_between_the_durable_file_and_the_delete_loses_nothing(
    db_path: Path, tmp_path: Path
) -> None:
    original = _seed(db_path, 1000)
    archive_dir = tmp_path / "audit-archive"
    process = _start(db_path, archive_dir, 300, kill_in_window=True)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    # The duplicate state: the first batch is in its file and still in the database.
    assert _in_db(db_path) == set(original)
    assert sorted(_in_archives(archive_dir)) == original[:300]
    _finish_and_check(db_path, archive_dir, original)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_at_a_random_moment_loses_nothing(db_path: Path, tmp_path: Path, seed: int) -> None:
    original = _seed(db_path, 20_000)
    archive_dir = tmp_path / "audit-archive"
    process = _start(db_path, archive_dir, 400, kill_in_window=False)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "started"
    time.sleep(random.Random(seed).uniform(0.0, 0.3))  # where the kill lands, not an assertion
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    # Whatever was interrupted: every row is still in the database or in a verified file.
    assert _in_db(db_path) | set(_in_archives(archive_dir)) == set(original)
    _finish_and_check(db_path, archive_dir, original)
