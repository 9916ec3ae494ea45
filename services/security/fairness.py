"""Per-key fairness limits, shared by every process of a service.

Two limits per caller (the user id of the API key), per service ("scope"):

* a **rate limit**: a token bucket of ``rate_per_minute`` tokens that refills at
  ``rate_per_minute / 60`` tokens a second; every admitted call takes one. A burst of
  ``rate_per_minute`` calls passes, the next one is refused until a token is back.
* a **concurrency limit**: at most ``max_concurrent`` calls holding a lease at once.
  A lease is released when the call ends (for a stream: when the stream ends).

The state lives in one small SQLite file in the data directory (``fairness.db``), so
every process of a service (``ai-suite up`` runs one; containers may run more) sees the
same counts, and each decision is one ``BEGIN IMMEDIATE`` transaction.

Why not a library: ``limits`` (PyPI) has rate limits over memory, Redis, Memcached and
MongoDB, none of which is shared by the processes of this platform (it runs no server
besides its own), and no concurrency leases at all. Why not the security database: every
admitted call writes here, two times with a lease; in a file of its own those writes never
queue with audit writes, and the state is disposable (deleting the file resets the limits).

Leases of a process that dies without releasing them (kill -9, OOM) do not leak: each
lease records its holder (host name, pid and the pid's start time) and an expiry that the
holder renews (:meth:`Fairness.run`, every ``lease_ttl / 3``). A lease whose holder is
gone from this host is dropped at the next admission for that key; any other lease that
nobody renewed is dropped once it has expired.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.core.errors import ApiError
from services.security.db import Database

log = logging.getLogger("ai_suite.security.fairness")

Limit = Literal["rate", "concurrency"]
LIMITS: tuple[Limit, ...] = ("rate", "concurrency")
DEFAULT_LEASE_TTL = 30.0
SCHEMA_VERSION = 1
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS buckets (
        scope TEXT NOT NULL, key TEXT NOT NULL, tokens REAL NOT NULL, updated REAL NOT NULL,
        PRIMARY KEY (scope, key)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS leases (
        id TEXT PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL, node TEXT NOT NULL,
        pid INTEGER NOT NULL, pid_started REAL NOT NULL, expires REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS leases_by_key ON leases (scope, key)",
    "CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires)",
)


class LimitExceeded(Exception):
    """A call refused by a fairness limit: 429 with ``Retry-After``."""

    def __init__(self, limit: Limit, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after
        self.message = message

    @property
    def code(self) -> str:
        return "rate_limited" if self.limit == "rate" else "too_many_concurrent_requests"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

    def api_error(self) -> ApiError:
        return ApiError(429, self.message, code=self.code, headers=self.headers)


class FairnessUnavailable(Exception):
    """The fairness database cannot be written: the call is refused with 503."""

    code = "fairness_unavailable"

    def __init__(self, path: Path, exc: sqlite3.Error) -> None:
        self.message = (
            f"the per-key limits cannot be checked ({path}: {exc}); check that the data"
            " directory is writable and the disk is not full"
        )
        super().__init__(self.message)

    def api_error(self) -> ApiError:
        return ApiError(503, self.message, code=self.code, headers={"Retry-After": "5"})


@dataclass(frozen=True)
class FairnessLimits:
    """The limits and the names of the settings that set them (for error messages)."""

    rate_per_minute: int
    max_concurrent: int
    rate_setting: str
    concurrency_setting: str
    # What is counted, for messages: "requests", "tool calls".
    noun: str = "requests"


class FairnessMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.refused = Counter(
            "rate_limited_total",
            "Calls refused with 429 by a per-key fairness limit, by limit (rate, concurrency).",
            ["service", "limit"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "fairness_in_flight",
            "Calls holding a per-key concurrency lease in this process.",
            ["service"],
            registry=registry,
        )
        for limit in LIMITS:  # zero series, so that rate() sees the first refusal
            self.refused.labels(service, limit)
        self.in_flight.labels(service).set(0)


def _holder() -> tuple[str, int, float]:
    """Who holds the leases this process takes: host name, pid, the pid's start time.

    The start time tells a reused pid from the holder (a reused pid has another)."""
    pid = os.getpid()
    return socket.gethostname(), pid, psutil.Process(pid).create_time()


def _holder_alive(pid: int, pid_started: float) -> bool:
    try:
        process = psutil.Process(pid)
        # A killed child its parent has not reaped yet is a zombie: it holds nothing.
        return (
            abs(process.create_time() - pid_started) < 0.5
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # exists, but not ours to inspect: let the lease expire instead


def open_fairness_db(path: Path) -> Database:
    """The fairness database at ``path`` (created 0600 like the security database).

    Its state is disposable, so it is written without fsync (``synchronous=OFF``); a file
    an operating system crash has damaged is replaced by a new one.
    """
    try:
        return _open(path)
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise
        log.warning("fairness database %s is damaged (%s): starting a new one", path, exc)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return _open(path)


def _open(path: Path) -> Database:
    db = Database(path, synchronous="OFF")
    try:
        _create_schema(db)
    except BaseException:
        db.close()
        raise
    return db


def _create_schema(db: Database) -> None:
    with db.transaction() as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            # Disposable state written by another version: start over rather than guess.
            conn.execute("DROP TABLE IF EXISTS buckets")
            conn.execute("DROP TABLE IF EXISTS leases")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@dataclass
class Lease:
    """A held concurrency slot; :meth:`Fairness.release` it exactly once."""

    id: str
    key: str


class Fairness:
    """The fairness limits of one service (``scope``) over a shared database."""

    def __init__(
        self,
        db: Database,
        scope: str,
        limits: FairnessLimits,
        *,
        metrics: FairnessMetrics | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.scope = scope
        self.limits = limits
        self.metrics = metrics
        self.lease_ttl = lease_ttl
        # Wall-clock time: the processes sharing the file must agree on it.
        self.clock = clock
        self._node, self._pid, self._pid_started = _holder()
        self._held: set[str] = set()
        self._lock = threading.Lock()

    # -- the decisions (synchronous: one SQLite transaction each) ------------------------

    def admit_sync(self, key: str, *, hold: bool = True) -> Lease | None:
        """Count a call for ``key``; with ``hold``, also take a concurrency lease.

        Raises :class:`LimitExceeded`. A call refused by the concurrency limit still
        counts against the rate: refused calls are not free.
        """
        try:
            lease = self._admit(key, hold)
        except sqlite3.Error as exc:
            # Not admitted unchecked: a broken database must not switch the limits off.
            raise FairnessUnavailable(self.db.path, exc) from exc
        if lease is not None:
            with self._lock:
                self._held.add(lease.id)
                self._set_gauge()
        return lease

    def _admit(self, key: str, hold: bool) -> Lease | None:
        now = self.clock()
        refused: LimitExceeded | None = None
        lease: Lease | None = None
        with self.db.transaction() as conn:
            wait = self._take_token(conn, key, now)
            if wait is not None:
                refused = self._refusal("rate", wait)
            elif hold:
                self._reap(conn, key, now)
                (held,) = conn.execute(
                    "SELECT count(*) FROM leases WHERE scope = ? AND key = ?", (self.scope, key)
                ).fetchone()
                if held >= self.limits.max_concurrent:
                    refused = self._refusal("concurrency", 1.0)
                else:
                    lease = Lease(uuid.uuid4().hex, key)
                    conn.execute(
                        "INSERT INTO leases (id, scope, key, node, pid, pid_started, expires)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            lease.id,
                            self.scope,
                            key,
                            self._node,
                            self._pid,
                            self._pid_started,
                            now + self.lease_ttl,
                        ),
                    )
        if refused is not None:
            if self.metrics is not None:
                self.metrics.refused.labels(self.scope, refused.limit).inc()
            raise refused
        return lease

    def release_sync(self, lease: Lease | None) -> None:
        if lease is None:
            return
        with self._lock:
            if lease.id not in self._held:
                return  # released already
            self._held.discard(lease.id)
            self._set_gauge()
        try:
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM leases WHERE id = ?", (lease.id,))
        except sqlite3.Error as exc:
            # No longer renewed, the lease expires within lease_ttl: log, do not fail the
            # call that has already been answered.
            log.warning("could not release a fairness lease (it expires by itself): %s", exc)

    def renew_sync(self) -> None:
        """Push the expiry of every lease this process holds ``lease_ttl`` ahead."""
        with self._lock:
            held = list(self._held)
        if not held:
            return
        expires = self.clock() + self.lease_ttl
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE leases SET expires = ? WHERE id = ?", [(expires, i) for i in held]
            )

    def in_flight(self, key: str) -> int:
        """Leases held for ``key`` by every process (expired ones included until reaped)."""
        row = self.db.query_one(
            "SELECT count(*) FROM leases WHERE scope = ? AND key = ?", (self.scope, key)
        )
        return int(row[0]) if row else 0

    # -- async wrappers: SQLite may wait for the write lock, never on the event loop ----

    async def admit(self, key: str, *, hold: bool = True) -> Lease | None:
        admitted = asyncio.ensure_future(asyncio.to_thread(self.admit_sync, key, hold=hold))
        try:
            return await asyncio.shield(admitted)
        except asyncio.CancelledError:
            # The caller went away while the thread took a lease (a client disconnecting
            # at that moment): release it, or it would hold a slot until it expires.
            try:
                lease = await admitted
            except (LimitExceeded, FairnessUnavailable):
                raise asyncio.CancelledError() from None
            await self.release(lease)
            raise

    async def release(self, lease: Lease | None) -> None:
        if lease is not None:
            # Shielded: a request cancelled by a client that went away still releases.
            await asyncio.shield(asyncio.to_thread(self.release_sync, lease))

    async def run(self) -> None:
        """Renew this process's leases until cancelled (run it in the service's lifespan)."""
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                await asyncio.to_thread(self.renew_sync)
            except sqlite3.Error as exc:  # the next round tries again; leases last a TTL
                log.warning("could not renew fairness leases: %s", exc)

    # -- internals ----------------------------------------------------------------------

    def _take_token(self, conn: sqlite3.Connection, key: str, now: float) -> float | None:
        """Take one token of ``key``'s bucket; None if taken, else seconds until one is."""
        capacity = float(self.limits.rate_per_minute)
        per_second = capacity / 60.0
        row = conn.execute(
            "SELECT tokens, updated FROM buckets WHERE scope = ? AND key = ?", (self.scope, key)
        ).fetchone()
        tokens = capacity
        if row is not None:
            # max(0, ...): a clock that stepped back refills nothing rather than draining.
            tokens = min(capacity, row["tokens"] + max(0.0, now - row["updated"]) * per_second)
        wait: float | None = None
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / per_second
        conn.execute(
            "INSERT INTO buckets (scope, key, tokens, updated) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (scope, key) DO UPDATE SET tokens = excluded.tokens,"
            " updated = excluded.updated",
            (self.scope, key, tokens, now),
        )
        return wait

    def _reap(self, conn: sqlite3.Connection, key: str, now: float) -> None:
        """Drop expired leases, and ``key``'s leases whose holder on this host is gone."""
        conn.execute("DELETE FROM leases WHERE expires < ?", (now,))
        rows = conn.execute(
            "SELECT id, pid, pid_started FROM leases WHERE scope = ? AND key = ? AND node = ?"
            " AND pid != ?",
            (self.scope, key, self._node, self._pid),
        ).fetchall()
        dead = [(r["id"],) for r in rows if not _holder_alive(r["pid"], r["pid_started"])]
        if dead:
            conn.executemany("DELETE FROM leases WHERE id = ?", dead)
            log.warning("reclaimed %d lease(s) of processes that are gone", len(dead))

    def _refusal(self, limit: Limit, wait: float) -> LimitExceeded:
        retry_after = max(1, math.ceil(wait))
        limits = self.limits
        if limit == "rate":
            message = (
                f"more than {limits.rate_per_minute} {limits.noun} a minute with this API key"
                f" ({limits.rate_setting}); retry in {retry_after}s, or ask an admin to raise"
                f" {limits.rate_setting}"
            )
        else:
            message = (
                f"{limits.max_concurrent} {limits.noun} of this API key are in progress"
                f" already ({limits.concurrency_setting}); retry when one has finished, or ask"
                f" an admin to raise {limits.concurrency_setting}"
            )
        return LimitExceeded(limit, retry_after, message)

    def _set_gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.in_flight.labels(self.scope).set(len(self._held))
