"""The Model Context Protocol endpoint, built with the official SDK's ``MCPServer``.

Streamable HTTP at ``/mcp``. Every HTTP request must carry
``Authorization: Bearer <key>``: a guard in front of the SDK's ASGI app answers
401 before the SDK sees anything. Each tool call re-reads the key from its own
HTTP request (keys can be revoked mid-session) and goes through the same
:class:`ToolPipeline` as the REST facade, so RBAC, approvals, rate limits and
the audit log are identical. ``tools/list`` is filtered per caller by an SDK
middleware, so a viewer is never shown tools it may not call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.core.context import request_id_var, user_var
from services.core.errors import error_body
from services.core.version import package_version
from services.mcp.pipeline import CallError, ToolPipeline
from services.mcp.tools.base import ToolSpec
from services.security.http_auth import AuthMetrics
from services.security.policy import Sensitivity
from services.security.rbac import AccessControl, AuthError, Principal, parse_bearer

APPROVAL_ARGUMENT = "approval_id"
INSTRUCTIONS = (
    "Tools of the Local AI Suite. Files, git and commands are confined to the configured "
    "workspace roots. Tools marked as needing approval answer with an approval_id first; "
    "after an admin approves it (`ai-suite approvals approve <id>`), call the tool again with "
    "the same arguments plus approval_id."
)
# MCPServer registers these even with nothing to serve; removed so that the capabilities
# advertised at initialize are only what this server does: tools.
UNSERVED_METHODS = (
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
)


@contextmanager
def _logging_untouched() -> Iterator[None]:
    """MCPServer() calls logging.basicConfig(); only the process entry point may configure logs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


class _RawArguments(ArgModelBase):
    """Hands the client's arguments through untouched: the pipeline validates them."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


def _schema(spec: ToolSpec) -> dict[str, Any]:
    schema = spec.input_schema()
    if spec.sensitivity >= Sensitivity.HIGH:
        schema.setdefault("properties", {})[APPROVAL_ARGUMENT] = {
            "type": ["string", "null"],
            "default": None,
            "description": "The id of an approved request for exactly these arguments.",
        }
    return schema


def _text_result(payload: dict[str, Any], *, is_error: bool) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(payload, ensure_ascii=False))],
        structured_content=payload,
        is_error=is_error,
    )


class McpProtocol:
    """Builds the SDK server and the guarded ASGI app mounted at ``/mcp``."""

    def __init__(
        self, pipeline: ToolPipeline, access: AccessControl, auth_metrics: AuthMetrics, host: str
    ) -> None:
        self.pipeline = pipeline
        self.access = access
        self.auth_metrics = auth_metrics
        with _logging_untouched():
            self.server: MCPServer[Any] = MCPServer(
                "local-ai-suite",
                version=package_version(),
                instructions=INSTRUCTIONS,
                tools=[self._tool(spec) for spec in pipeline.tools.values()],
                middleware=[self._filter_tool_list],
                subscriptions=False,  # the tool list never changes while the server runs
            )
        # The SDK has no public way to unregister a handler (its own in-memory transport
        # uses _lowlevel_server too); tests/unit/mcp/test_mcp_bridge.py checks the result.
        handlers = self.server._lowlevel_server._request_handlers
        for method in UNSERVED_METHODS:
            handlers.pop(method, None)
        # Creates the session manager; its run() is entered by the app's lifespan.
        self.server.streamable_http_app(streamable_http_path="/mcp", host=host)
        self.asgi_app: ASGIApp = BearerGuard(
            StreamableHTTPASGIApp(self.server.session_manager), access, auth_metrics
        )

    @property
    def session_manager(self) -> Any:
        return self.server.session_manager

    def _tool(self, spec: ToolSpec) -> Tool:
        async def run(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
            return await self._call(spec.name, arguments, ctx)

        return Tool(
            fn=run,
            name=spec.name,
            description=spec.description,
            parameters=_schema(spec),
            fn_metadata=FuncMetadata(arg_model=_RawArguments),
            is_async=True,
            context_kwarg="ctx",
            annotations=ToolAnnotations(
                read_only_hint=spec.sensitivity == Sensitivity.LOW,
                destructive_hint=spec.sensitivity >= Sensitivity.HIGH,
            ),
        )

    async def _principal(self, request: Request | None) -> Principal:
        if request is None:
            raise AuthError("no HTTP request: this server only speaks streamable HTTP")
        token = parse_bearer(request.headers.get("authorization"))
        return await run_in_threadpool(self.access.authenticate, token)

    async def _call(self, name: str, arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        request = ctx.request_context.request
        request_id = (request.scope.get("state") or {}).get("request_id") if request else None
        token = request_id_var.set(request_id)
        try:
            try:
                principal = await self._principal(request)
            except AuthError as exc:
                return _text_result({"error": exc.reason, "code": "invalid_api_key"}, is_error=True)
            arguments = dict(arguments)
            approval_id = arguments.pop(APPROVAL_ARGUMENT, None)
            try:
                result = await self.pipeline.call(
                    principal,
                    name,
                    arguments,
                    approval_id=approval_id if isinstance(approval_id, str) else None,
                    authorization=request.headers.get("authorization") if request else None,
                )
            except CallError as exc:
                return _text_result(
                    {"error": exc.message, "code": exc.code, "status": exc.status, **exc.extra},
                    is_error=True,
                )
            if result.status == 202:
                # Not run yet: an error result, so a model does not believe the work is done.
                return _text_result({"approval_required": True, **result.body}, is_error=True)
            return _text_result(result.body, is_error=False)
        finally:
            request_id_var.reset(token)

    async def _filter_tool_list(
        self,
        ctx: ServerRequestContext[Any, Any],
        call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[HandlerResult]],
    ) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list" or not isinstance(result, dict):
            return result
        try:
            principal = await self._principal(ctx.request)
        except AuthError:
            return {**result, "tools": []}
        allowed = {spec.name for spec, _ in self.pipeline.visible_tools(principal)}
        return {**result, "tools": [t for t in result.get("tools", []) if t["name"] in allowed]}


def _reason_label(message: str) -> str:
    # The same bounded labels as services.security.http_auth uses for auth_failures_total.
    for label in ("missing", "format", "revoked", "expired", "disabled"):
        if label in message:
            return label
    return "invalid"


def session_owner(principal: Principal) -> AuthenticatedUser:
    """The identity the SDK binds a session to: the user, not the key.

    The SDK's session manager records ``scope["user"]`` of the request that opened a
    session and answers any later request whose user differs exactly as if the session
    did not exist (404 "Session not found"): no other user can use, read or DELETE it,
    nor learn that it exists. The same user with another of its keys keeps the session.
    """
    token = AccessToken(
        token="",  # the key itself is never handed to the SDK
        client_id="local-ai-suite",
        scopes=[],
        subject=f"user:{principal.user_id}",
    )
    return AuthenticatedUser(token)


class BearerGuard:
    """401 for any ``/mcp`` request without a valid API key, before the SDK runs.

    It also tells the SDK who the caller is (:func:`session_owner`), so an MCP session
    belongs to the user who opened it.
    """

    def __init__(self, app: ASGIApp, access: AccessControl, metrics: AuthMetrics) -> None:
        self.app = app
        self.access = access
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = parse_bearer(Headers(scope=scope).get("authorization"))
        try:
            principal = await run_in_threadpool(self.access.authenticate, token)
        except AuthError as exc:
            self.metrics.failures.labels(_reason_label(exc.reason)).inc()
            response = JSONResponse(
                error_body(401, exc.reason, code="invalid_api_key"),
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = principal.user
        scope["user"] = session_owner(principal)
        user_var.set(principal.user)
        await self.app(scope, receive, send)
