"""Approval requests: the store, the state machine, and the sweeper that expires them.

States: ``pending`` → ``approved`` | ``rejected`` | ``cancelled`` | ``expired``;
``approved`` → ``executed`` | ``expired``. Every transition is one guarded
``UPDATE … WHERE status IN (…)`` inside a write transaction, so two racing
callers cannot both win. The transition's audit row is written in that same
transaction (a ``kill -9`` keeps both or neither; if the row cannot be written the
transition rolls back), and ``approval_requests_total{status}`` is incremented once,
after the commit — never when somebody merely looks at a request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.security.audit import AuditEntry, AuditLog, AuditTransaction
from services.security.db import Database
from services.security.migrations import utcnow
from services.security.rbac import Principal

log = logging.getLogger("ai_suite.mcp.approvals")

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
EXPIRED, CANCELLED, EXECUTED = "expired", "cancelled", "executed"
_SETTABLE = ("reason", "decided_at", "decided_by", "expires_at", "executed_at")
REQUESTED = "requested"  # the transition into PENDING, as counted and audited
STATUSES = (PENDING, APPROVED, REJECTED, EXPIRED, CANCELLED, EXECUTED)
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)

_SELECT = (
    "SELECT a.id, a.user_id, u.name AS user, a.tool, a.args_hash, a.args_summary, a.status,"
    " a.created_at, a.expires_at, a.decided_at, d.name AS decided_by, a.reason, a.executed_at"
    " FROM approval_requests a JOIN users u ON u.id = a.user_id"
    " LEFT JOIN users d ON d.id = a.decided_by"
)


class ApprovalRefused(Exception):
    """An approval cannot be used or decided; each case has its own code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Approval:
    id: str
    user_id: int
    user: str
    tool: str
    args_hash: str
    args_summary: dict[str, Any]
    status: str
    created_at: str
    expires_at: str
    decided_at: str | None
    decided_by: str | None
    reason: str | None
    executed_at: str | None

    def as_dict(self) -> dict[str, Any]:
        # args_summary: every argument as the approver sees it (secrets redacted);
        # args_hash: the SHA-256 of the real arguments, the only call this approval runs.
        data = asdict(self)
        data.pop("user_id")
        return data


def _row(row: sqlite3.Row) -> Approval:
    values = dict(row)
    values["args_summary"] = json.loads(values["args_summary"] or "{}")
    return Approval(**values)


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


class _PendingCollector(Collector):
    """``approvals_pending``, counted in the database at scrape time (all processes agree)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily("approvals_pending", "Approval requests waiting for a decision.")]

    def collect(self) -> list[GaugeMetricFamily]:
        row = self.db.query_one(
            "SELECT COUNT(*) FROM approval_requests WHERE status = ?", (PENDING,)
        )
        family = GaugeMetricFamily("approvals_pending", "Approval requests waiting for a decision.")
        family.add_metric([], int(row[0]) if row else 0)
        return [family]


class ApprovalMetrics:
    def __init__(self, registry: CollectorRegistry, db: Database) -> None:
        self.transitions = Counter(
            "approval_requests_total",
            "Approval request transitions (requested, approved, rejected, expired, cancelled,"
            " executed), each counted once when it happens.",
            ["status"],
            registry=registry,
        )
        # Every status exists from the start at 0, so that increase() in alert
        # rules sees the first transition after a restart.
        for status in ("requested", "approved", "rejected", "expired", "cancelled", "executed"):
            self.transitions.labels(status)
        self.wait = Histogram(
            "approval_wait_seconds",
            "Time from an approval request to its decision (approved or rejected).",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        registry.register(_PendingCollector(db))


class ApprovalStore:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        metrics: ApprovalMetrics,
        *,
        ttl_seconds: float,
        on_created: Callable[[Approval], None] | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.metrics = metrics
        self.ttl = ttl_seconds
        # Told about each new pending request once it has committed (the notifier,
        # services/mcp/notify.py); it must return at once and never raise.
        self.on_created = on_created

    # --- reading ------------------------------------------------------------

    def get(self, approval_id: str) -> Approval | None:
        row = self.db.query_one(_SELECT + " WHERE a.id = ?", (approval_id,))
        return _row(row) if row else None

    def list(
        self, *, status: str | None = None, user_id: int | None = None, limit: int = 100
    ) -> list[Approval]:
        clauses, params = [], []
        if status:
            clauses.append("a.status = ?")
            params.append(status)
        if user_id is not None:
            clauses.append("a.user_id = ?")
            params.append(user_id)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self.db.query(
            _SELECT + where + " ORDER BY a.created_at DESC LIMIT ?", (*params, limit)
        )
        return [_row(row) for row in rows]

    # --- transitions ----------------------------------------------------------

    def create(
        self, principal: Principal, tool: str, args_hash: str, summary: dict[str, Any]
    ) -> Approval:
        approval_id = "apr_" + uuid.uuid4().hex
        with self.audit.transaction() as tx:
            tx.conn.execute(
                "INSERT INTO approval_requests (id, user_id, tool, args_hash, args_summary,"
                " status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    approval_id,
                    principal.user_id,
                    tool,
                    args_hash,
                    json.dumps(summary, sort_keys=True, default=str),
                    PENDING,
                    utcnow(),
                    _in(self.ttl),
                ),
            )
            approval = self._record(tx, REQUESTED, approval_id, principal)
        self._count(REQUESTED)
        if self.on_created is not None:
            self.on_created(approval)
        return approval

    def approve(
        self, approval_id: str, decider: Principal, reason: str | None, *, allow_self: bool
    ) -> Approval:
        def check(current: Approval) -> None:
            if current.user_id == decider.user_id and not allow_self:
                raise ApprovalRefused(
                    403,
                    "self_approval_forbidden",
                    "you cannot approve your own request; ask another admin"
                    " (or set MCP_ALLOW_SELF_APPROVAL=true for single-user development)",
                )

        # Approval opens a fresh window to use it, so a late decision is still usable.
        return self._decide(approval_id, decider, APPROVED, reason, check, _in(self.ttl))

    def reject(self, approval_id: str, decider: Principal, reason: str) -> Approval:
        return self._decide(approval_id, decider, REJECTED, reason, None, None)

    def cancel(self, approval_id: str, requester: Principal) -> Approval:
        def check(current: Approval) -> None:
            if current.user_id != requester.user_id:
                raise ApprovalRefused(
                    403, "approval_other_user", "only the requester can cancel this request"
                )

        return self._decide(approval_id, requester, CANCELLED, None, check, None)

    def _decide(
        self,
        approval_id: str,
        actor: Principal,
        to_status: str,
        reason: str | None,
        check: Any,
        new_expiry: str | None,
    ) -> Approval:
        now = utcnow()
        expired_now = False
        with self.audit.transaction() as tx:
            conn = tx.conn
            current = self._locked(conn, approval_id)
            if check is not None:
                check(current)
            if current.status == PENDING and current.expires_at <= now:
                self._set(conn, approval_id, (PENDING,), EXPIRED, {})
                self._record(tx, EXPIRED, approval_id, None)
                expired_now = True
            elif current.status != PENDING:
                raise ApprovalRefused(
                    410 if current.status == EXPIRED else 409,
                    (
                        f"approval_{current.status}"
                        if current.status == EXPIRED
                        else "approval_not_pending"
                    ),
                    f"approval {approval_id} is {current.status}, not pending; nothing to do",
                )
            else:
                fields: dict[str, Any] = {"reason": reason}
                if to_status in (APPROVED, REJECTED):
                    fields.update(decided_at=now, decided_by=actor.user_id)
                if new_expiry:
                    fields["expires_at"] = new_expiry
                self._set(conn, approval_id, (PENDING,), to_status, fields)
                approval = self._record(tx, to_status, approval_id, actor)
        if expired_now:
            self._count(EXPIRED)
            raise ApprovalRefused(
                410, "approval_expired", f"approval {approval_id} expired before the decision"
            )
        if to_status in (APPROVED, REJECTED):
            self.metrics.wait.observe(max(0.0, _seconds_between(approval.created_at, now)))
        self._count(to_status)
        return approval

    def consume(
        self,
        approval_id: str,
        principal: Principal,
        tool: str,
        args_hash: str,
        *,
        also: Callable[[AuditTransaction], None] | None = None,
    ) -> Approval:
        """Turn an approved request into ``executed`` for exactly one run of the tool.

        ``also`` runs inside the same transaction once the approval is consumed: the
        pipeline writes the call's intent row there, so an ``executed`` approval always
        has the row of the call it was used for.
        """
        now = utcnow()
        expired_now = False
        with self.audit.transaction() as tx:
            conn = tx.conn
            current = self._locked(conn, approval_id)
            if current.user_id != principal.user_id:
                raise ApprovalRefused(
                    403, "approval_other_user", f"approval {approval_id} belongs to another user"
                )
            if current.tool != tool:
                raise ApprovalRefused(
                    409,
                    "approval_tool_mismatch",
                    f"approval {approval_id} is for tool {current.tool!r}, not {tool!r}",
                )
            if current.status in (PENDING, APPROVED) and current.expires_at <= now:
                self._set(conn, approval_id, (PENDING, APPROVED), EXPIRED, {})
                self._record(tx, EXPIRED, approval_id, None)
                expired_now = True
            else:
                self._refuse_state(current)
                if current.args_hash != args_hash:
                    raise ApprovalRefused(
                        409,
                        "approval_arguments_mismatch",
                        f"approval {approval_id} was granted for different arguments;"
                        " repeat the exact call that was approved",
                    )
                self._set(conn, approval_id, (APPROVED,), EXECUTED, {"executed_at": now})
                approval = self._record(tx, EXECUTED, approval_id, principal)
                if also is not None:
                    also(tx)
        if expired_now:
            self._count(EXPIRED)
            raise ApprovalRefused(
                410, "approval_expired", f"approval {approval_id} expired; request a new one"
            )
        self._count(EXECUTED)
        return approval

    @staticmethod
    def _refuse_state(current: Approval) -> None:
        messages = {
            PENDING: (409, "is still pending; wait until an admin approves it"),
            REJECTED: (409, "was rejected" + (f": {current.reason}" if current.reason else "")),
            CANCELLED: (409, "was cancelled by the requester"),
            EXECUTED: (409, "was already used; an approval runs the tool once"),
            EXPIRED: (410, "has expired; request a new approval"),
        }
        if current.status in messages:
            status, text = messages[current.status]
            code = (
                "approval_already_used"
                if current.status == EXECUTED
                else (f"approval_{current.status}")
            )
            raise ApprovalRefused(status, code, f"approval {current.id} {text}")

    def expire_due(self) -> list[Approval]:
        """Expire every pending or approved request past its deadline (the sweeper)."""
        now = utcnow()
        with self.audit.transaction() as tx:
            ids = [
                row[0]
                for row in tx.conn.execute(
                    "SELECT id FROM approval_requests WHERE status IN (?, ?) AND expires_at <= ?",
                    (PENDING, APPROVED, now),
                )
            ]
            expired = []
            for approval_id in ids:
                self._set(tx.conn, approval_id, (PENDING, APPROVED), EXPIRED, {})
                expired.append(self._record(tx, EXPIRED, approval_id, None))
        for _ in expired:
            self._count(EXPIRED)
        return expired

    # --- helpers ----------------------------------------------------------------

    def _locked(self, conn: sqlite3.Connection, approval_id: str) -> Approval:
        row = conn.execute(_SELECT + " WHERE a.id = ?", (approval_id,)).fetchone()
        if row is None:
            raise ApprovalRefused(
                404,
                "approval_not_found",
                f"no approval request {approval_id!r}; see GET /v1/approvals",
            )
        return _row(row)

    @staticmethod
    def _set(
        conn: sqlite3.Connection,
        approval_id: str,
        from_statuses: tuple[str, ...],
        to_status: str,
        fields: dict[str, Any],
    ) -> None:
        unknown = set(fields) - set(_SETTABLE)
        if unknown:  # pragma: no cover - programming error
            raise ValueError(f"not settable: {sorted(unknown)}")
        allowed = (*from_statuses, from_statuses[0])[:2]
        cur = conn.execute(
            "UPDATE approval_requests SET status = ?, reason = COALESCE(?, reason),"
            " decided_at = COALESCE(?, decided_at), decided_by = COALESCE(?, decided_by),"
            " expires_at = COALESCE(?, expires_at), executed_at = COALESCE(?, executed_at)"
            " WHERE id = ? AND status IN (?, ?)",
            (to_status, *(fields.get(name) for name in _SETTABLE), approval_id, *allowed),
        )
        if cur.rowcount != 1:  # pragma: no cover - the transaction holds the write lock
            raise RuntimeError(f"approval {approval_id} changed during its transition")

    def _record(
        self,
        tx: AuditTransaction,
        transition: str,
        approval_id: str,
        actor: Principal | None,
    ) -> Approval:
        """Audit one transition inside its own transaction; returns the approval as it now
        is. Raises AuditWriteError if the row cannot be stored (the transition rolls back).
        """
        approval = self._locked(tx.conn, approval_id)
        tx.write(
            AuditEntry(
                action=f"approval:{transition}",
                outcome="ok",
                user=actor.user if actor else "system",
                user_id=actor.user_id if actor else None,
                resource=approval.id,
                details={
                    "tool": approval.tool,
                    "requester": approval.user,
                    "reason": approval.reason,
                    "arguments": approval.args_summary,
                    "args_hash": approval.args_hash,
                },
            )
        )
        return approval

    def _count(self, transition: str) -> None:
        """``approval_requests_total``: only for transitions that committed."""
        self.metrics.transitions.labels(transition).inc()


class ApprovalSweeper:
    """Expires overdue requests in the background, so they never wait for a poll; also
    closes the audited calls of processes that died since this one started (another
    MCP process on the same database, not restarted), not only at the next start."""

    def __init__(self, store: ApprovalStore, interval: float) -> None:
        self.store = store
        self.interval = interval

    async def run(self) -> None:
        while True:
            await self.sweep_once()
            await self.recover_once()
            await asyncio.sleep(self.interval)

    async def recover_once(self) -> int:
        try:
            closed = await asyncio.to_thread(self.store.audit.recover_interrupted)
        except Exception:  # the sweeper must survive a locked or full database
            log.exception("audit recovery failed; retrying in %.0fs", self.interval)
            return 0
        return len(closed)

    async def sweep_once(self) -> int:
        try:
            expired = await asyncio.to_thread(self.store.expire_due)
        except Exception:  # the sweeper must survive a locked or full database
            log.exception("approval sweep failed; retrying in %.0fs", self.interval)
            return 0
        if expired:
            log.info("expired %d approval request(s)", len(expired))
        return len(expired)
