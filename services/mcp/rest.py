"""The REST facade: ``/tools`` and ``/approvals``, which the gateway exposes under ``/v1``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import JSONResponse

from services.core.errors import ApiError
from services.mcp.approvals import STATUSES, Approval, ApprovalRefused, ApprovalStore
from services.mcp.pipeline import CallError, ToolPipeline, audit_unavailable
from services.security.audit import AuditWriteError
from services.security.http_auth import authenticate, requires
from services.security.rbac import Principal

Requester = Annotated[Principal, Depends(requires("approvals:request"))]
Decider = Annotated[Principal, Depends(requires("approvals:decide"))]
Caller = Annotated[Principal, Depends(authenticate)]
MAX_REASON_CHARS = 2000
T = TypeVar("T")


def _json_body(properties: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI for a body the route reads itself (``_json_object``): optional, a JSON
    object with only these keys."""
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": schema}}}}


CALL_BODY = _json_body(
    {
        "arguments": {
            "type": ["object", "null"],
            "description": "The tool's arguments (its input_schema in GET /tools).",
        },
        "approval_id": {
            "type": ["string", "null"],
            "description": "An approved approval for this exact call.",
        },
    }
)
REASON_BODY = _json_body({"reason": {"type": ["string", "null"], "maxLength": MAX_REASON_CHARS}})


def api_error(error: CallError) -> ApiError:
    return ApiError(
        error.status,
        error.message,
        code=error.code,
        param=error.param,
        headers=error.headers,
        extra=error.extra,
    )


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_body")
    return body


def _reason(body: dict[str, Any], *, required: bool) -> str | None:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ApiError(400, "'reason' must be a string", code="invalid_body", param="reason")
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON_CHARS:
        raise ApiError(
            400,
            f"'reason' is limited to {MAX_REASON_CHARS} characters",
            code="invalid_body",
            param="reason",
        )
    if required and not reason:
        raise ApiError(
            400,
            'a rejection needs a reason: send {"reason": "..."}',
            code="reason_required",
            param="reason",
        )
    return reason or None


async def _store_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except ApprovalRefused as exc:
        raise ApiError(exc.status, exc.message, code=exc.code) from None
    except AuditWriteError as exc:
        raise api_error(audit_unavailable(exc)) from exc


def tools_router(pipeline: ToolPipeline) -> APIRouter:
    router = APIRouter()

    @router.get("/tools")
    async def list_tools(principal: Caller) -> dict[str, Any]:
        visible = await asyncio.to_thread(pipeline.visible_tools, principal)
        return {
            "data": [
                {
                    "name": spec.name,
                    "description": spec.description,
                    "sensitivity": spec.sensitivity.name,
                    "requires_approval": needs,
                    "input_schema": spec.input_schema(),
                }
                for spec, needs in visible
            ]
        }

    @router.post("/tools/{name}/call", openapi_extra=CALL_BODY)
    async def call_tool(name: str, request: Request, principal: Caller) -> JSONResponse:
        body = await _json_object(request)
        unknown = set(body) - {"arguments", "approval_id"}
        if unknown:
            raise ApiError(
                400,
                f'unknown field(s) {sorted(unknown)}; send {{"arguments": {{...}},'
                ' "approval_id": null}',
                code="invalid_body",
            )
        arguments = body.get("arguments")
        arguments = {} if arguments is None else arguments
        approval_id = body.get("approval_id")
        if not isinstance(arguments, dict):
            raise ApiError(
                400, "'arguments' must be a JSON object", code="invalid_body", param="arguments"
            )
        if approval_id is not None and not isinstance(approval_id, str):
            raise ApiError(
                400,
                "'approval_id' must be a string or null",
                code="invalid_body",
                param="approval_id",
            )
        try:
            result = await pipeline.call(
                principal,
                name,
                arguments,
                approval_id=approval_id,
                authorization=request.headers.get("authorization"),
            )
        except CallError as exc:
            raise api_error(exc) from None
        return JSONResponse(result.body, status_code=result.status)

    return router


def approvals_router(store: ApprovalStore, *, allow_self_approval: bool) -> APIRouter:
    router = APIRouter()

    def is_decider(request: Request, principal: Principal) -> bool:
        return "approvals:decide" in request.app.state.access.allowed_permissions(principal)

    def visible(request: Request, principal: Principal, approval: Approval | None) -> Approval:
        if approval is None or (
            approval.user_id != principal.user_id and not is_decider(request, principal)
        ):
            raise ApiError(
                404, "no such approval request; see GET /v1/approvals", code="approval_not_found"
            )
        return approval

    @router.get("/approvals")
    async def list_approvals(
        request: Request,
        principal: Requester,
        status: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        if status is not None and status not in STATUSES:
            raise ApiError(
                400,
                f"unknown status {status!r}; use one of {', '.join(STATUSES)}",
                code="invalid_status",
                param="status",
            )
        user_id = None if is_decider(request, principal) else principal.user_id
        items = await asyncio.to_thread(store.list, status=status, user_id=user_id, limit=limit)
        return {"data": [item.as_dict() for item in items]}

    @router.get("/approvals/{approval_id}")
    async def get_approval(approval_id: str, request: Request, principal: Requester) -> Any:
        approval = await asyncio.to_thread(store.get, approval_id)
        return visible(request, principal, approval).as_dict()

    @router.post("/approvals/{approval_id}/approve", openapi_extra=REASON_BODY)
    async def approve(approval_id: str, request: Request, principal: Decider) -> Any:
        reason = _reason(await _json_object(request), required=False)
        approval = await _store_call(
            store.approve, approval_id, principal, reason, allow_self=allow_self_approval
        )
        return approval.as_dict()

    @router.post("/approvals/{approval_id}/reject", openapi_extra=REASON_BODY)
    async def reject(approval_id: str, request: Request, principal: Decider) -> Any:
        reason = _reason(await _json_object(request), required=True)
        approval = await _store_call(store.reject, approval_id, principal, reason)
        return approval.as_dict()

    @router.post("/approvals/{approval_id}/cancel")
    async def cancel(approval_id: str, request: Request, principal: Requester) -> Any:
        approval = await asyncio.to_thread(store.get, approval_id)
        visible(request, principal, approval)
        cancelled = await _store_call(store.cancel, approval_id, principal)
        return cancelled.as_dict()

    return router
