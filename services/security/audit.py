"""The audit log: every write lands in SQLite, or the request fails.

Writes are synchronous and lossless: a caller gets its answer only once ITS row is
committed, and a row that cannot be committed fails its caller with
``AuditWriteError``. There is no dropping queue (the predecessor dropped entries when
its queue filled). What there is, is group commit (issue 16): one writer thread per
``AuditLog`` takes every row waiting at that moment and commits them in one
transaction (a refused row rolls back alone: the batch runs again without it), then
answers each caller through its own future. Threads no longer race for SQLite's write
lock (its busy handler sleeps for milliseconds), and one commit serves many requests.
Async callers (``awrite``, ``acommit``) await the future without blocking the loop;
sync callers (``write``, ``commit``) block on it. ``transaction()`` (a caller's state
change with its rows) takes the same writer lock, so it never races the writer either.

Surviving ``kill -9`` (issue 11): a state change in the security database and its
audit row are written in one transaction (``AuditLog.transaction()``), so a crash
keeps both or neither. Work outside the database (a tool call) is bracketed by an
intent row before it starts and an outcome row after (``begin_call``/``end_call``);
at start, ``recover_interrupted`` gives every call whose process died an outcome
row ``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psutil
from prometheus_client import CollectorRegistry, Counter

from services.core.context import request_id_var
from services.core.logging import redact
from services.security.db import Database
from services.security.migrations import utcnow

T = TypeVar("T")
MAX_DETAILS_BYTES = 4096
# How long the writer thread waits for work before it ends (and closes its connection);
# the next write starts a new one.
WRITER_IDLE_SECONDS = 5.0
STARTED, INTERRUPTED = "started", "interrupted"
INTERRUPTED_NOTE = (
    "the service stopped while this call ran (killed or crashed); whether its side"
    " effect happened is unknown: check the target before repeating it"
)
log = logging.getLogger("ai_suite.audit")


class AuditWriteError(RuntimeError):
    """The audit entry could not be stored; the action must not proceed or succeed."""


@dataclass
class AuditEntry:
    action: str
    outcome: str
    user: str | None = None
    user_id: int | None = None
    resource: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    call_id: str | None = None  # links a call's intent ('started') and outcome rows


def _pid_namespace() -> str:
    """This process's PID namespace ("pid:[4026531836]"); a pid means something only in it."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux: one namespace
        return ""


@dataclass(frozen=True)
class ProcessOwner:
    """The process running a call: its pid and start time (a pid alone can be reused),
    the PID namespace they belong to, and the service it runs."""

    pid: int
    started: float
    namespace: str = ""
    service: str = ""

    @classmethod
    def current(cls, service: str = "") -> ProcessOwner:
        process = psutil.Process()
        return cls(process.pid, process.create_time(), _pid_namespace(), service)

    def gone_for(self, me: ProcessOwner) -> bool:
        """Whether ``me`` may judge this owner dead and close its calls."""
        if self == me:
            return False
        if self.namespace == me.namespace:
            return not self.alive()
        # Another PID namespace (another container on the shared data volume): its pids
        # mean nothing here, so only a new instance of the same service closes them: it
        # replaces the old one (one instance of a service per database, as compose runs).
        return bool(me.service) and self.service == me.service

    def alive(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            # A killed process its parent has not reaped yet is a zombie: it runs nothing.
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            # create_time is boot time + ticks since boot; the boot time psutil derives
            # can move by a fraction of a second between readings (fairness.py saw it),
            # while a reused pid would have to be reused within that window.
            return abs(process.create_time() - self.started) < 0.5
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True  # someone else's process: never assume it is gone


def _details_json(details: dict[str, Any]) -> str:
    raw = json.dumps(details, ensure_ascii=False, default=str, sort_keys=True)
    try:
        raw.encode()
    except UnicodeEncodeError:
        # Lone surrogates (legal in JSON request bodies) cannot be stored as UTF-8.
        raw = json.dumps(details, ensure_ascii=True, default=str, sort_keys=True)
    text = redact(raw)
    size = len(text.encode())
    if size > MAX_DETAILS_BYTES:
        # Say that it was cut instead of cutting silently. The summary is cut by bytes
        # and re-escaping at most doubles it, so the stored text stays under the limit.
        summary = text.encode()[: MAX_DETAILS_BYTES // 3].decode("utf-8", "ignore")
        return json.dumps(
            {"truncated": True, "bytes": size, "summary": summary}, ensure_ascii=False
        )
    return text


_INSERT = (
    "INSERT INTO audit_log (ts, request_id, user_id, user_name, action, resource,"
    " outcome, status, duration_ms, details, call_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class AuditTransaction:
    """Audit rows written inside a caller's write transaction (``AuditLog.transaction``).

    ``conn`` is the transaction's connection: the caller makes its state change with
    it, so the change and its audit rows commit together or not at all.
    """

    def __init__(self, audit: AuditLog, conn: sqlite3.Connection) -> None:
        self.audit = audit
        self.conn = conn
        self.rows = 0

    def write(self, entry: AuditEntry) -> int:
        try:
            cur = self.conn.execute(
                _INSERT,
                (
                    utcnow(),
                    entry.request_id or request_id_var.get(),
                    entry.user_id,
                    entry.user,
                    entry.action,
                    entry.resource,
                    entry.outcome,
                    entry.status,
                    entry.duration_ms,
                    _details_json(entry.details),
                    entry.call_id,
                ),
            )
        except sqlite3.Error as exc:
            raise self.audit.failed(exc, entry) from exc
        self.rows += 1
        return int(cur.lastrowid or 0)

    def begin_call(self, entry: AuditEntry, owner: ProcessOwner) -> int:
        """The intent row of a call about to run, and its entry in ``audit_open_calls``."""
        if not entry.call_id or entry.outcome != STARTED:  # pragma: no cover - programming error
            raise ValueError("an intent row needs a call_id and the outcome 'started'")
        intent_id = self.write(entry)
        try:
            self.conn.execute(
                "INSERT INTO audit_open_calls (call_id, intent_id, owner_pid, owner_started,"
                " owner_namespace, owner_service, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.call_id,
                    intent_id,
                    owner.pid,
                    owner.started,
                    owner.namespace,
                    owner.service,
                    utcnow(),
                ),
            )
        except sqlite3.Error as exc:
            raise self.audit.failed(exc, entry) from exc
        return intent_id

    def end_call(self, entry: AuditEntry) -> int:
        """The outcome row of a call; it is no longer open."""
        if not entry.call_id or entry.outcome == STARTED:  # pragma: no cover - programming error
            raise ValueError("an outcome row needs the call's call_id and a final outcome")
        outcome_id = self.write(entry)
        try:
            cur = self.conn.execute(
                "DELETE FROM audit_open_calls WHERE call_id = ?", (entry.call_id,)
            )
        except sqlite3.Error as exc:
            raise self.audit.failed(exc, entry) from exc
        if cur.rowcount != 1:
            # Already closed (by a recovery pass that judged the owner dead): two outcome
            # rows would contradict each other, so this one is refused with the rest.
            raise AuditWriteError(f"call {entry.call_id} has no open intent row")
        return outcome_id


@dataclass(eq=False)
class _Job:
    """One caller's work in a group commit, and how its caller is answered: a thread
    waits on ``future``; a coroutine awaits ``waiter`` on its event ``loop``."""

    fn: Callable[[AuditTransaction], Any]
    context: contextvars.Context  # the caller's: its request id goes into the row
    future: Future | None = None
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future | None = None
    result: Any = None
    error: BaseException | None = None
    rows: int = 0


def _settle(jobs: list[_Job]) -> None:
    """On the callers' event loop: answer every waiting coroutine of a batch."""
    for job in jobs:
        assert job.waiter is not None  # nosec B101 - async jobs always have one
        if job.waiter.cancelled():  # the caller went away; its row is committed anyway
            continue
        if job.error is not None:
            job.waiter.set_exception(job.error)
        else:
            job.waiter.set_result(job.result)


class _RetryWithout(Exception):
    """Job ``index`` failed where it ran without a savepoint: the batch runs again
    without it (its error stands), and with a savepoint for each job after it."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


_WRITERS: weakref.WeakSet[_GroupWriter] = weakref.WeakSet()


def _reset_writers_after_fork() -> None:
    for writer in list(_WRITERS):
        writer._after_fork()


os.register_at_fork(after_in_child=_reset_writers_after_fork)


class _GroupWriter:
    """The one writer thread of an ``AuditLog``: group commit, each caller answered alone.

    The pending list is unbounded on purpose: every job in it has a caller waiting for
    it, so its length is bounded by the number of callers, and nothing is ever dropped.

    The writer runs Python on a second thread next to the event loop: every SQLite call
    releases the GIL, and getting it back can take the interpreter's switch interval
    while the loop is busy. So a batch makes as few calls as it can: the jobs run
    without savepoints, and only if one of them fails is the batch rolled back and run
    again without it, each job after it in a savepoint (so a later failure rolls back
    alone); the coroutines of a batch are woken with one call per event loop.
    """

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._thread: threading.Thread | None = None
        _WRITERS.add(self)

    def _after_fork(self) -> None:
        # A forked child has none of the parent's threads: its first write starts its own
        # writer (the parent's jobs are the parent's to answer).
        self._cond = threading.Condition()
        self._pending = []
        self._thread = None

    def submit(
        self, fn: Callable[[AuditTransaction], Any], loop: asyncio.AbstractEventLoop | None = None
    ) -> _Job:
        if threading.current_thread() is self._thread:
            # A job waiting for a later batch would wait for itself forever.
            raise RuntimeError("an audit job cannot wait for another audit write")
        job = _Job(fn, contextvars.copy_context())
        if loop is None:
            job.future = Future()
        else:
            job.loop, job.waiter = loop, loop.create_future()
        with self._cond:
            self._pending.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()
            else:
                self._cond.notify()
        return job

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(WRITER_IDLE_SECONDS)
                if not self._pending:
                    self._thread = None  # the next submit starts a new writer
                    break
                batch, self._pending = self._pending, []
            self._commit(batch)
        self.audit.db.close_thread_connection()

    def _commit(self, batch: list[_Job]) -> None:
        audit = self.audit
        try:
            with audit.lock:
                conn = audit.db.connection()
                failed: set[int] = set()
                while True:
                    try:
                        self._run_batch(conn, batch, failed)
                        break
                    except _RetryWithout as retry:
                        failed.add(retry.index)
        except sqlite3.Error as exc:
            # BEGIN or COMMIT failed (read-only, disk full, locked beyond the busy
            # timeout), or SQLite rolled the whole transaction back under a job: no row
            # of this batch is stored, so every caller fails.
            refused = [job for job in batch if job.error is None]
            audit.failures.inc(len(refused))
            log.error(
                "audit write failed: %s (%d callers refused)",
                exc,
                len(refused),
                extra={"action": "group_commit"},
            )
            for job in refused:
                job.error = AuditWriteError(
                    f"audit log write failed ({exc}); the action was refused"
                )
                job.error.__cause__ = exc
        except BaseException as exc:  # a closed database: every caller gets the reason
            for job in batch:
                job.error = job.error or exc
        else:
            audit.writes.inc(sum(job.rows for job in batch if job.error is None))
        self._answer(batch)

    @staticmethod
    def _answer(batch: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in batch:
            if job.loop is not None:
                by_loop.setdefault(job.loop, []).append(job)
            elif job.error is not None:
                assert job.future is not None  # nosec B101 - a thread's job has one
                job.future.set_exception(job.error)
            else:
                assert job.future is not None  # nosec B101
                job.future.set_result(job.result)
        for loop, jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, jobs)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                continue

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job], failed: set[int]) -> None:
        first_failed = min(failed, default=len(batch))
        conn.execute("BEGIN IMMEDIATE")
        try:
            for index, job in enumerate(batch):
                if index in failed:
                    continue  # its error stands; it does not run (or count) twice
                savepoint = index > first_failed
                tx = AuditTransaction(self.audit, conn)
                if savepoint:
                    conn.execute("SAVEPOINT audit_job")
                try:
                    job.result, job.error = job.context.run(job.fn, tx), None
                except Exception as exc:
                    job.error = exc
                    if not conn.in_transaction:
                        # SQLite rolled back everything (a full disk, an I/O error):
                        # the rows of the jobs before this one are gone too.
                        raise sqlite3.OperationalError(f"transaction rolled back: {exc}") from exc
                    if not savepoint:
                        raise _RetryWithout(index) from exc
                    conn.execute("ROLLBACK TO audit_job")
                else:
                    job.rows = tx.rows
                if savepoint:
                    conn.execute("RELEASE audit_job")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


class AuditLog:
    def __init__(self, db: Database, registry: CollectorRegistry, *, service: str = "") -> None:
        self.db = db
        self.writes = Counter(
            "audit_writes_total",
            "Audit log entries written.",
            registry=registry,
        )
        self.failures = Counter(
            "audit_write_failures_total",
            "Audit log entries that could not be written (the request failed with them).",
            registry=registry,
        )
        self.recovered = Counter(
            "audit_recovered_calls_total",
            "Calls found without an outcome row at start (their process died) and closed"
            " with the outcome 'interrupted'.",
            registry=registry,
        )
        # Intent rows name the process that runs the work (pid + start time), so a
        # recovery pass elsewhere can tell a running call from one whose process died.
        self.owner = ProcessOwner.current(service)
        # One writer at a time from this process: the group writer's batches and
        # transaction() take this lock, so they never meet in SQLite's busy handler.
        self.lock = threading.RLock()
        self._writer = _GroupWriter(self)

    def failed(self, exc: sqlite3.Error, entry: AuditEntry) -> AuditWriteError:
        self.failures.inc()
        log.error("audit write failed: %s", exc, extra={"action": entry.action})
        return AuditWriteError(f"audit log write failed ({exc}); the action was refused")

    @contextmanager
    def transaction(self) -> Iterator[AuditTransaction]:
        """One write transaction for a state change and its audit rows.

        Everything rolls back if an audit row cannot be written (AuditWriteError); a
        failed BEGIN, or a failed COMMIT of audit rows, is an AuditWriteError too.
        ``audit_writes_total`` counts the rows only once they are committed.
        """
        tx: AuditTransaction | None = None
        body_done = False
        try:
            with self.lock, self.db.transaction() as conn:
                tx = AuditTransaction(self, conn)
                yield tx
                body_done = True
        except sqlite3.Error as exc:
            # BEGIN failed (read-only, locked beyond the busy timeout), or the COMMIT of
            # audit rows failed: nothing was stored, so the action must not proceed.
            if tx is None or (body_done and tx.rows):
                raise self.failed(exc, AuditEntry("transaction", "failed")) from exc
            raise
        assert tx is not None  # nosec B101 - set before the body ran
        if tx.rows:
            self.writes.inc(tx.rows)

    def write(self, entry: AuditEntry) -> int:
        """One row (an event that changes no other state), committed when this returns."""
        return self.commit(lambda tx: tx.write(entry))

    async def awrite(self, entry: AuditEntry) -> int:
        """``write`` for the event loop: awaits the commit without blocking the loop."""
        return await self.acommit(lambda tx: tx.write(entry))

    def commit(self, fn: Callable[[AuditTransaction], T]) -> T:
        """Run ``fn(tx)`` in the writer's next group commit; its result once committed.

        ``fn`` runs on the writer thread: it writes audit rows (``tx.write``,
        ``tx.begin_call``, ``tx.end_call``) and small changes that go with them, quickly,
        and must not wait for another audit write; it may run twice (a batch in which
        another job failed runs again), so it changes nothing outside the database. If
        it raises, its changes roll back alone and the exception is raised here; if the
        commit fails, every caller of the batch gets ``AuditWriteError``.
        """
        job = self._writer.submit(fn)
        assert job.future is not None  # nosec B101 - a thread's job has one
        return job.future.result()

    async def acommit(self, fn: Callable[[AuditTransaction], T]) -> T:
        """``commit`` for the event loop. Cancelling the caller does not cancel the write:
        once submitted, the row is committed (or fails) as if the caller still waited."""
        job = self._writer.submit(fn, asyncio.get_running_loop())
        assert job.waiter is not None  # nosec B101 - an async job has one
        return await job.waiter  # type: ignore[no-any-return]

    def recover_interrupted(self, current: ProcessOwner | None = None) -> list[dict[str, Any]]:
        """Close every open call whose process is gone with an ``interrupted`` row.

        Idempotent, and safe with several processes on one database: a call is closed
        only when its owner (pid + start time) no longer runs, and the check and the
        outcome rows happen in one write transaction, so two recovering processes
        cannot both close a call. Returns the intent rows that were closed.
        """
        me = current or self.owner
        closed: list[dict[str, Any]] = []
        if self.db.query_one("SELECT 1 FROM audit_open_calls LIMIT 1") is None:
            return closed  # the usual case: no write transaction at every start
        with self.transaction() as tx:
            rows = tx.conn.execute(
                "SELECT o.owner_pid, o.owner_started, o.owner_namespace, o.owner_service, a.*"
                " FROM audit_open_calls o"
                " JOIN audit_log a ON a.id = o.intent_id ORDER BY a.id"
            ).fetchall()
            for row in rows:
                owner = ProcessOwner(
                    int(row["owner_pid"]),
                    float(row["owner_started"]),
                    row["owner_namespace"],
                    row["owner_service"],
                )
                if not owner.gone_for(me):
                    continue
                details = json.loads(row["details"] or "{}")
                details.update(
                    note=INTERRUPTED_NOTE,
                    intent_id=row["id"],
                    owner_pid=owner.pid,
                    owner_service=owner.service,
                )
                tx.end_call(
                    AuditEntry(
                        action=row["action"],
                        outcome=INTERRUPTED,
                        user=row["user_name"],
                        user_id=row["user_id"],
                        resource=row["resource"],
                        details=details,
                        request_id=row["request_id"],
                        call_id=row["call_id"],
                    )
                )
                closed.append(dict(row))
        if closed:
            self.recovered.inc(len(closed))
            log.warning(
                "audit recovery: %d call(s) were running when their process stopped;"
                " marked 'interrupted' (their side effects may or may not have happened): %s",
                len(closed),
                ", ".join(f"{row['action']} {row['call_id']}" for row in closed),
            )
        return closed

    def open_calls(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM audit_open_calls")
        return int(row[0]) if row else 0

    def count(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM audit_log")
        return int(row[0]) if row else 0

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(row) for row in rows]
