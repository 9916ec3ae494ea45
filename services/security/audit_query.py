"""Reading the audit log: filters, keyset pagination, export, following.

One implementation for ``GET /v1/audit`` (gateway) and ``ai-suite audit`` (CLI). Pages are
keyset pages on the row id (``id > cursor`` ascending, ``id < cursor`` descending), never
``OFFSET``: rows inserted while someone pages through cannot shift a page, so a walk sees
every row that existed when it started exactly once. Ids are given in commit order
(SQLite has one writer at a time), so an ascending walk or a follow also sees each new row
once. The cursor is opaque to callers (base64 of the order and the last id).

Every read is itself audited (action ``audit.read`` with the filters): the caller writes
that row (``read_entry``) through its own audit path (a 503 in the gateway when it fails).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.core.timespec import iso, parse_instant
from services.security.audit import AuditEntry
from services.security.db import Database

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
EXPORT_BATCH = 500
READ_ACTION = "audit.read"
ORDERS = ("asc", "desc")
# What callers may filter on: parameter name -> audit_log column (equality).
_EQUALITY = {"user": "user_name", "action": "action", "outcome": "outcome"}
_MAX_VALUE = 200


class AuditQueryError(ValueError):
    """A bad filter, limit or cursor; ``parameter`` names it (HTTP 400, CLI usage error)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class AuditFilter:
    user: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def describe(self) -> dict[str, str]:
        """The filters as given, for the ``audit.read`` row."""
        values: dict[str, str] = {}
        for name in _EQUALITY:
            value = getattr(self, name)
            if value is not None:
                values[name] = value
        if self.since is not None:
            values["since"] = iso(self.since)
        if self.until is not None:
            values["until"] = iso(self.until)
        return values


def parse_filter(
    *,
    user: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: str | None = None,
    until: str | None = None,
    now: datetime | None = None,
) -> AuditFilter:
    """Validate the filters as typed (query string or command line)."""
    values = {"user": user, "action": action, "outcome": outcome}
    for name, value in values.items():
        if value is None:
            continue
        if not 0 < len(value) <= _MAX_VALUE or "\x00" in value or not _is_utf8(value):
            raise AuditQueryError(name, f"must be 1 to {_MAX_VALUE} characters of UTF-8 text")
    instants: dict[str, datetime | None] = {}
    for name, text in (("since", since), ("until", until)):
        try:
            instants[name] = parse_instant(text, now=now) if text is not None else None
        except ValueError as exc:
            raise AuditQueryError(name, str(exc)) from None
    start, end = instants["since"], instants["until"]
    if start is not None and end is not None and end < start:
        raise AuditQueryError("until", f"{iso(end)} is before since ({iso(start)})")
    return AuditFilter(user=user, action=action, outcome=outcome, since=start, until=end)


def _is_utf8(text: str) -> bool:
    try:
        text.encode()  # lone surrogates (undecodable command-line bytes) are not
    except UnicodeEncodeError:
        return False
    return True


def parse_limit(text: str | int | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except (TypeError, ValueError):
        raise AuditQueryError("limit", f"{text!r} is not a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise AuditQueryError(
            "limit", f"must be between 1 and {MAX_LIMIT}, got {limit}; page with the cursor"
        )
    return limit


def parse_order(text: str | None) -> str:
    if text is None:
        return "desc"
    if text not in ORDERS:
        raise AuditQueryError("order", f"must be asc or desc, got {text!r}")
    return text


@dataclass(frozen=True)
class Cursor:
    order: str
    after_id: int

    def encode(self) -> str:
        raw = f"{self.order}:{self.after_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, order: str) -> Cursor:
        problem = "not a cursor from a previous page's next_cursor"
        try:
            padded = text + "=" * (-len(text) % 4)
            kind, _, number = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
            cursor = cls(kind, int(number))
        except (ValueError, binascii.Error, UnicodeError):
            raise AuditQueryError("cursor", problem) from None
        if cursor.order not in ORDERS or not 0 <= cursor.after_id < 2**63:  # SQLite's int
            raise AuditQueryError("cursor", problem)
        if cursor.order != order:
            raise AuditQueryError(
                "cursor", f"was made for order={cursor.order}; ask with the same order"
            )
        return cursor


@dataclass(frozen=True)
class AuditPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def row_dict(row: Any) -> dict[str, Any]:
    """An audit row as the API and the CLI show it: details parsed, ``user`` named."""
    try:
        details = json.loads(row["details"] or "{}")
    except ValueError:  # written by hand or by an older version: keep the text
        details = {"raw": row["details"]}
    if not isinstance(details, dict):
        details = {"value": details}
    return {
        "id": row["id"],
        "ts": row["ts"],
        "request_id": row["request_id"],
        "user": row["user_name"],
        "user_id": row["user_id"],
        "action": row["action"],
        "resource": row["resource"],
        "outcome": row["outcome"],
        "status": row["status"],
        "duration_ms": row["duration_ms"],
        "details": details,
        "call_id": row["call_id"],
    }


def _where(flt: AuditFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for name, column in _EQUALITY.items():
        value = getattr(flt, name)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if flt.since is not None:
        clauses.append("ts >= ?")
        params.append(iso(flt.since))
    if flt.until is not None:
        clauses.append("ts < ?")
        params.append(iso(flt.until))
    return clauses, params


class AuditReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    def page(
        self,
        flt: AuditFilter,
        *,
        limit: int = DEFAULT_LIMIT,
        order: str = "desc",
        cursor: Cursor | None = None,
    ) -> AuditPage:
        clauses, params = _where(flt)
        if cursor is not None:
            clauses.append("id > ?" if order == "asc" else "id < ?")
            params.append(cursor.after_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        direction = "ASC" if order == "asc" else "DESC"
        # One row more than asked says whether there is a next page.
        # Only fixed column names and ASC/DESC are formatted in; every value is bound.
        sql = f"SELECT * FROM audit_log{where} ORDER BY id {direction}"  # noqa: S608  # nosec B608
        rows = self.db.query(sql + " LIMIT ?", (*params, limit + 1))
        more = len(rows) > limit
        found = [row_dict(row) for row in rows[:limit]]
        next_cursor = Cursor(order, found[-1]["id"]).encode() if more else None
        return AuditPage(found, next_cursor)

    def export(
        self, flt: AuditFilter, *, order: str = "asc", cursor: Cursor | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every matching row, in batches (each its own short read, so a slow reader never
        holds a snapshot that stops the WAL from being checkpointed)."""
        while True:
            page = self.page(flt, limit=EXPORT_BATCH, order=order, cursor=cursor)
            yield from page.rows
            if page.next_cursor is None:
                return
            cursor = Cursor(order, page.rows[-1]["id"])

    def last_id(self) -> int:
        row = self.db.query_one("SELECT COALESCE(MAX(id), 0) FROM audit_log")
        return int(row[0]) if row else 0

    def follow(
        self,
        flt: AuditFilter,
        *,
        after_id: int,
        poll_seconds: float = 0.5,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[dict[str, Any]]:
        """Rows after ``after_id`` as they are committed, until ``stop()`` is true."""
        cursor = Cursor("asc", after_id)
        while not stop():
            for row in self.export(flt, order="asc", cursor=cursor):
                cursor = Cursor("asc", row["id"])
                yield row
            time.sleep(poll_seconds)


def read_entry(
    flt: AuditFilter, *, user: str | None, user_id: int | None, via: str, **more: Any
) -> AuditEntry:
    """The ``audit.read`` row that records a read and what it asked for."""
    return AuditEntry(
        action=READ_ACTION,
        outcome="ok",
        user=user,
        user_id=user_id,
        resource="audit_log",
        details={"filters": flt.describe(), "via": via, **more},
    )
