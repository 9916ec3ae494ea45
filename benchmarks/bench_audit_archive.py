"""Audit retention: how long archiving takes, and how long each batch holds the write lock.

Run: .venv/bin/python benchmarks/bench_audit_archive.py [--rows 166000] [--batch 2000]

Writes ``--rows`` audit rows (issue 15 saw 166,000 in 30 minutes of load), all past the
retention age, into a fresh security database, then archives them with the archiver the
gateway runs. Each batch is one write transaction (select, gzip JSONL + checksum fsynced,
delete), so its duration is how long concurrent audit writes wait.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.security.audit import AuditEntry, AuditLog
from services.security.audit_archive import AuditArchiver
from services.security.db import Database
from services.security.migrations import migrate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=166_000)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "security.db")
        migrate(db)
        log = AuditLog(db, CollectorRegistry())
        with log.transaction() as tx:
            for i in range(args.rows):
                tx.write(
                    AuditEntry(
                        action="chat:create",
                        outcome="ok",
                        user=f"user{i % 20}",
                        resource="chat",
                        status=200,
                        duration_ms=812.4,
                        details={"model": "chat", "backend": "default", "tokens": 42},
                    )
                )
        old = (datetime.now(UTC) - timedelta(days=120)).isoformat(timespec="microseconds")
        with db.transaction() as conn:
            conn.execute("UPDATE audit_log SET ts = ?", (old,))
        size = (Path(tmp) / "security.db").stat().st_size
        archiver = AuditArchiver(
            db, Path(tmp) / "audit-archive", retention_days=90, batch_rows=args.batch
        )
        batch_seconds: list[float] = []
        archive_batch = archiver._archive_batch

        def timed(cutoff: str):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return archive_batch(cutoff)
            finally:
                batch_seconds.append(time.perf_counter() - started)

        archiver._archive_batch = timed  # type: ignore[method-assign]
        started = time.perf_counter()
        batches = archiver.run()
        total = time.perf_counter() - started
        archived = sum(b.rows for b in batches)
        gz = sum(b.path.stat().st_size for b in batches)
        db.close()
    print(f"{archived} rows ({size / 1e6:.1f} MB of database) in {total:.1f} s,")
    print(f"  {len(batches)} files of {args.batch} rows, {gz / 1e6:.2f} MB of gzip JSONL")
    print(
        f"  write lock per batch: median {statistics.median(batch_seconds) * 1000:.0f} ms,"
        f" max {max(batch_seconds) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
