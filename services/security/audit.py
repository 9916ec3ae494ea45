"""The audit log: every write lands in SQLite, or the request fails.

There is deliberately no queue: a queue either blocks or drops entries when it
fills (the predecessor dropped). A synchronous write in the request's own path
costs well under a millisecond in WAL mode and loses nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from services.core.context import request_id_var
from services.core.logging import redact
from services.security.db import Database
from services.security.migrations import utcnow

MAX_DETAILS_BYTES = 4096
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


class AuditLog:
    def __init__(self, db: Database, registry: CollectorRegistry) -> None:
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

    def write(self, entry: AuditEntry) -> int:
        try:
            with self.db.transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO audit_log (ts, request_id, user_id, user_name, action, resource,"
                    " outcome, status, duration_ms, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    ),
                )
        except sqlite3.Error as exc:
            self.failures.inc()
            log.error("audit write failed: %s", exc, extra={"action": entry.action})
            raise AuditWriteError(
                f"audit log write failed ({exc}); the action was refused"
            ) from exc
        self.writes.inc()
        return int(cur.lastrowid or 0)

    def count(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM audit_log")
        return int(row[0]) if row else 0

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(row) for row in rows]
