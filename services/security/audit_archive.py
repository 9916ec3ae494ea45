"""Audit retention that loses nothing silently: archive, make it durable, then delete.

Rows older than the retention age are moved, a batch at a time, to gzip-compressed JSON
lines in ``data_dir/audit-archive/``, one file per batch named by its row-id range
(``audit-<first>-<last>.jsonl.gz``) with a ``sha256sum``-format sidecar (``.sha256``).
Each batch is one write transaction of the security database:

1. ``BEGIN IMMEDIATE``; select the batch (the oldest rows before the cut-off, by id; rows
   of calls still open in ``audit_open_calls`` stay);
2. write the checksum, then the file, each to a temporary name, ``fsync``ed, then renamed into
   place and ``fsync`` the directory: the archive is durable;
3. ``DELETE`` exactly those rows; ``COMMIT``.

Any failure before the commit rolls the delete back: the rows stay, the failure is
counted (``audit_archive_failures_total``) and raised. A crash after step 2 and before the
commit leaves the rows *and* their file: a duplicate, never a loss. The next run selects
the same first row, finds a file that starts at it, and re-archives exactly that file's
id range (the rows are immutable and gzip is written without a timestamp, so the file is
rewritten byte for byte), then deletes them: re-archiving is idempotent by id range.

Audit writes wait (``busy_timeout``) while a batch is written: keep batches small
(``AUDIT_ARCHIVE_BATCH_ROWS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from services.core.files import PRIVATE_FILE_MODE, private_dir
from services.core.timespec import iso
from services.security.audit_query import row_dict
from services.security.db import Database

ARCHIVE_DIR_NAME = "audit-archive"
_NAME = re.compile(r"audit-(\d+)-(\d+)\.jsonl\.gz")
log = logging.getLogger("ai_suite.audit.archive")


class ArchiveError(RuntimeError):
    """A batch could not be archived; its rows were kept."""


class ArchiveMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.failures = Counter(
            "audit_archive_failures_total",
            "Audit archive runs that failed (the rows were kept in the database).",
            registry=registry,
        )
        self.archived = Counter(
            "audit_archived_rows_total",
            "Audit rows written to a durable archive file and then deleted from the database.",
            registry=registry,
        )


@dataclass(frozen=True)
class ArchivedBatch:
    path: Path
    rows: int
    first_id: int
    last_id: int


def archive_name(first_id: int, last_id: int) -> str:
    return f"audit-{first_id}-{last_id}.jsonl.gz"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    """``data`` at a temporary name, fsynced, then renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def encode_rows(rows: list[dict[str, Any]]) -> bytes:
    """Deterministic gzip (no timestamp, no name): the same rows give the same bytes."""
    text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    return gzip.compress(text.encode(), mtime=0)


class AuditArchiver:
    def __init__(
        self,
        db: Database,
        archive_dir: Path,
        *,
        retention_days: int,
        batch_rows: int = 2000,
        metrics: ArchiveMetrics | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        after_files_durable: Callable[[ArchivedBatch], None] | None = None,
    ) -> None:
        if retention_days < 0 or batch_rows < 1:
            raise ValueError("retention_days must be >= 0 and batch_rows >= 1")
        self.db = db
        self.archive_dir = archive_dir
        self.retention_days = retention_days
        self.batch_rows = batch_rows
        self.metrics = metrics or ArchiveMetrics(CollectorRegistry())
        self.now = now
        # A test hook between "file durable" and "rows deleted" (the crash window).
        self.after_files_durable = after_files_durable
        self.stop = threading.Event()  # set: no new batch starts

    def cutoff(self) -> datetime | None:
        """Rows older than this are archived; None when retention is off (0 = keep forever)."""
        if self.retention_days == 0:
            return None
        return self.now() - timedelta(days=self.retention_days)

    def run(self) -> list[ArchivedBatch]:
        """Archive every row older than the retention age, batch by batch.

        Raises ArchiveError at the first failed batch (earlier batches stay archived)."""
        cutoff = self.cutoff()
        if cutoff is None:
            return []
        done: list[ArchivedBatch] = []
        try:
            while not self.stop.is_set() and (batch := self._archive_batch(iso(cutoff))):
                done.append(batch)
        except (OSError, ArchiveError, sqlite3.Error) as exc:
            self.metrics.failures.inc()
            log.error(
                "audit archive failed after %d batch(es); the rows are kept: %s",
                len(done),
                exc,
                extra={"archive_dir": str(self.archive_dir)},
            )
            raise ArchiveError(
                f"archiving audit rows to {self.archive_dir} failed ({exc}); the rows are kept"
                " in the database. Check that the directory is writable and the disk not full."
            ) from exc
        if done:
            log.info(
                "archived %d audit row(s) older than %s into %d file(s) in %s",
                sum(b.rows for b in done),
                iso(cutoff),
                len(done),
                self.archive_dir,
            )
        return done

    def _remove_leftovers(self) -> None:
        """Temporary files and checksums without their archive, left by a killed run."""
        for tmp in self.archive_dir.glob(".audit-*.tmp"):
            tmp.unlink(missing_ok=True)
        for sidecar in self.archive_dir.glob("audit-*.jsonl.gz.sha256"):
            if not sidecar.with_name(sidecar.name.removesuffix(".sha256")).exists():
                sidecar.unlink(missing_ok=True)

    def _leftover_range(self, first_id: int) -> tuple[int, int] | None:
        """The id range of a file left by a run that crashed before its delete committed."""
        for path in self.archive_dir.glob(f"audit-{first_id}-*.jsonl.gz"):
            match = _NAME.fullmatch(path.name)
            if match:
                return int(match.group(1)), int(match.group(2))
        return None

    def _archive_batch(self, cutoff: str) -> ArchivedBatch | None:
        with self.db.transaction() as conn:
            # Under the write lock no other archiver is half-way through a batch.
            self._remove_leftovers()
            # `+ts`: walk the rows by id (oldest first) and stop after a batch, instead of
            # letting the planner pick the ts index, which reads every old row per batch.
            base = (
                "SELECT * FROM audit_log WHERE +ts < ?"
                " AND id NOT IN (SELECT intent_id FROM audit_open_calls)"
            )
            rows = conn.execute(f"{base} ORDER BY id LIMIT ?", (cutoff, self.batch_rows)).fetchall()
            if not rows:
                return None
            private_dir(self.archive_dir)  # only once there is something to archive
            leftover = self._leftover_range(int(rows[0]["id"]))
            if leftover is not None:
                rows = conn.execute(
                    f"{base} AND id BETWEEN ? AND ? ORDER BY id", (cutoff, *leftover)
                ).fetchall()
            items = [row_dict(row) for row in rows]
            first, last = items[0]["id"], items[-1]["id"]
            path = self.archive_dir / archive_name(first, last)
            data = encode_rows(items)
            digest = hashlib.sha256(data).hexdigest()
            # The checksum first: a file that is visible under its name always has one.
            _write_durably(
                path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n".encode()
            )
            _write_durably(path, data)
            _fsync_dir(self.archive_dir)
            batch = ArchivedBatch(path, len(items), first, last)
            if self.after_files_durable is not None:
                self.after_files_durable(batch)
            # The same conditions over the batch's id range: inside this write transaction
            # nothing else changes the table, so this is exactly the rows just archived.
            deleted = conn.execute(
                "DELETE FROM audit_log WHERE +ts < ? AND id BETWEEN ? AND ?"
                " AND id NOT IN (SELECT intent_id FROM audit_open_calls)",
                (cutoff, first, last),
            ).rowcount
            if deleted != len(items):
                raise ArchiveError(f"deleted {deleted} rows of {len(items)} archived; rolled back")
        self.metrics.archived.inc(batch.rows)
        return batch


async def run_periodically(archiver: AuditArchiver, interval_seconds: float) -> None:
    """The gateway's retention task: a run at start, then one every interval. A failed run
    is counted and logged by ``run`` and tried again at the next interval. Cancelled (the
    gateway stops), it lets the batch in progress finish before the database closes."""
    if archiver.retention_days == 0:
        return
    while True:
        running = asyncio.ensure_future(asyncio.to_thread(archiver.run))
        try:
            await asyncio.shield(running)
        except ArchiveError:
            pass  # counted and logged in run(); tried again at the next interval
        except asyncio.CancelledError:
            archiver.stop.set()
            with contextlib.suppress(ArchiveError):
                await running
            raise
        await asyncio.sleep(interval_seconds)


@dataclass(frozen=True)
class ArchiveInfo:
    path: Path
    rows: int | None
    first_id: int | None
    last_id: int | None
    first_ts: str | None
    last_ts: str | None
    checksum: str  # OK, BAD, MISSING
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.checksum == "OK" and not self.problem


def verify_archive(path: Path) -> ArchiveInfo:
    """Check the file against its sidecar checksum and read its rows' id and time range."""
    data = path.read_bytes()
    sidecar = path.with_name(path.name + ".sha256")
    checksum = "MISSING"
    if sidecar.exists():
        expected = sidecar.read_text().split()[0] if sidecar.read_text().split() else ""
        checksum = "OK" if hashlib.sha256(data).hexdigest() == expected else "BAD"
    try:
        lines = gzip.decompress(data).decode().splitlines()
        rows = [json.loads(line) for line in lines if line]
        ids = [int(row["id"]) for row in rows]
        stamps = [str(row["ts"]) for row in rows]
    except (OSError, EOFError, ValueError, TypeError, KeyError) as exc:
        problem = f"unreadable: {type(exc).__name__}: {exc}"
        return ArchiveInfo(path, None, None, None, None, None, checksum, problem)
    problem = ""
    match = _NAME.fullmatch(path.name)
    if rows and match and (min(ids), max(ids)) != (int(match.group(1)), int(match.group(2))):
        problem = f"rows {min(ids)}-{max(ids)} do not match the name's id range"
    return ArchiveInfo(
        path,
        len(rows),
        min(ids) if ids else None,
        max(ids) if ids else None,
        min(stamps) if stamps else None,
        max(stamps) if stamps else None,
        checksum,
        problem,
    )


def list_archives(archive_dir: Path) -> list[ArchiveInfo]:
    """Every archive file, in id order, verified."""
    files = [p for p in archive_dir.glob("audit-*.jsonl.gz") if _NAME.fullmatch(p.name)]
    files.sort(key=lambda p: tuple(int(n) for n in _NAME.fullmatch(p.name).groups()))  # type: ignore[union-attr]
    return [verify_archive(path) for path in files]
