"""``GET /v1/audit``: the audit log for holders of ``audit:read`` (admins).

Filters, keyset pages and the JSONL export are :mod:`services.security.audit_query`'s, the
same as ``ai-suite audit``; this module only maps them to HTTP. Every read writes an
``audit.read`` row with its filters first: no row, no read (503 ``audit_unavailable``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from services.core.errors import ApiError, error_body
from services.security.audit_query import (
    MAX_LIMIT,
    AuditFilter,
    AuditQueryError,
    AuditReader,
    Cursor,
    parse_filter,
    parse_limit,
    parse_order,
    read_entry,
)
from services.security.http_auth import audit, requires
from services.security.rbac import Principal

log = logging.getLogger("ai_suite.gateway.audit")
AuditReaderUser = Annotated[Principal, Depends(requires("audit:read"))]
NDJSON = "application/x-ndjson"
_TIME_HELP = "A duration ago (10m, 1h, 2d) or an ISO-8601 time (UTC when no zone is given)."


class AuditRow(BaseModel):
    id: int
    ts: str
    request_id: str | None
    user: str | None
    user_id: int | None
    action: str
    resource: str | None
    outcome: str
    status: int | None
    duration_ms: float | None
    details: dict[str, Any]
    call_id: str | None


class AuditList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AuditRow]
    next_cursor: str | None


def _bad(exc: AuditQueryError) -> ApiError:
    return ApiError(400, str(exc), code="invalid_audit_query", param=exc.parameter)


def _jsonl(
    reader: AuditReader, flt: AuditFilter, order: str, cursor: Cursor | None
) -> Iterator[bytes]:
    try:
        for row in reader.export(flt, order=order, cursor=cursor):
            yield (json.dumps(row, ensure_ascii=False) + "\n").encode()
    except Exception as exc:
        # The status line is gone by now: the last line says the export is incomplete,
        # so a truncated file never passes for a whole one.
        log.exception("audit export failed")
        body = error_body(500, f"export stopped early: {exc}", code="audit_export_failed")
        yield (json.dumps(body) + "\n").encode()


def router() -> APIRouter:
    routes = APIRouter()

    @routes.get(
        "/v1/audit",
        response_model=AuditList,
        responses={
            200: {
                "description": "A page of rows, or every matching row as JSON lines"
                " (format=jsonl or Accept: application/x-ndjson).",
                "content": {NDJSON: {"schema": {"type": "string"}}},
            }
        },
    )
    async def read_audit(
        request: Request,
        principal: AuditReaderUser,
        user: Annotated[str | None, Query(description="Only rows of this user name.")] = None,
        action: Annotated[
            str | None, Query(description="e.g. chat:create, tool:read_file.")
        ] = None,
        outcome: Annotated[str | None, Query(description="e.g. ok, denied, error.")] = None,
        since: Annotated[str | None, Query(description="From (inclusive). " + _TIME_HELP)] = None,
        until: Annotated[str | None, Query(description="Before (exclusive). " + _TIME_HELP)] = None,
        limit: Annotated[
            str | None, Query(description=f"Rows per page, 1 to {MAX_LIMIT} (default 100).")
        ] = None,
        cursor: Annotated[
            str | None, Query(description="next_cursor of the previous page.")
        ] = None,
        order: Annotated[
            str | None, Query(description="desc (newest first, the default) or asc.")
        ] = None,
        format: Annotated[
            str | None, Query(description="json (default) or jsonl: every matching row, streamed.")
        ] = None,
    ) -> Any:
        try:
            flt = parse_filter(user=user, action=action, outcome=outcome, since=since, until=until)
            if format not in (None, "json", "jsonl"):
                raise AuditQueryError("format", f"must be json or jsonl, got {format!r}")
            export = format == "jsonl" or (
                format is None and NDJSON in request.headers.get("accept", "")
            )
            rows_per_page = parse_limit(limit)
            ordering = parse_order(order if order is not None else ("asc" if export else None))
            after = Cursor.decode(cursor, ordering) if cursor is not None else None
        except AuditQueryError as exc:
            raise _bad(exc) from None
        reader = AuditReader(request.app.state.db)
        await audit(
            request,
            read_entry(
                flt,
                user=principal.user,
                user_id=principal.user_id,
                via="GET /v1/audit",
                export=export,
            ),
        )
        if export:
            return StreamingResponse(
                iterate_in_threadpool(_jsonl(reader, flt, ordering, after)), media_type=NDJSON
            )
        page = await run_in_threadpool(
            reader.page, flt, limit=rows_per_page, order=ordering, cursor=after
        )
        return AuditList(data=[AuditRow(**row) for row in page.rows], next_cursor=page.next_cursor)

    return routes
