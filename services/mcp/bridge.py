"""MCP over stdin/stdout for assistants that launch a command (``ai-suite mcp stdio``).

A bridge, not a second server: the stdio side is an MCP server of the official SDK
that serves only ``tools/list`` and ``tools/call``, and forwards each of them to the
running MCP server's streamable HTTP endpoint with ``Authorization: Bearer <key>``.
The HTTP server therefore decides everything — the role-filtered tool list, RBAC,
validation, rate limits, approvals, audit and metrics — exactly as for any HTTP
client, and this process never opens the security database.

Every forwarded request uses a fresh upstream session (initialize, the request, and
a DELETE to end it: a few loopback round trips), so a restarted platform or a revoked
key takes effect on the next call and no upstream failure can take the stdio session
down with it. Nothing here writes to stdout except the SDK's stdio transport.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from services.core.http import default_ssl_context
from services.core.version import package_version

KEY_ENV = "AI_SUITE_API_KEY"  # the same variable as services/cli/approvals.py
URL_ENV = "MCP_URL"
SERVER_NAME = "local-ai-suite"
# The SDK's defaults: 30 s to connect/write, 300 s to read (a tool may run for
# MCP_TOOL_TIMEOUT before it answers).
TIMEOUT = httpx2.Timeout(30.0, read=300.0)
CREATE_KEY_HINT = "create one with `ai-suite keys create --user NAME --role developer`"

log = logging.getLogger("ai_suite.mcp.bridge")


class BridgeError(Exception):
    """Why the bridge cannot reach a working MCP server, as one line that says what to do."""


def mcp_endpoint(url: str) -> str:
    """The streamable HTTP endpoint for a base URL (``MCP_URL`` style) or the endpoint itself."""
    url = url.strip().rstrip("/")
    return url if url.endswith("/mcp") else f"{url}/mcp"


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (possibly nested) exception groups; task groups wrap them."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _error_message(response: httpx2.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return " ".join(response.text.split())[:200] or f"HTTP {response.status_code}"


class Upstream:
    """The running MCP server's streamable HTTP endpoint, reached with one API key."""

    def __init__(
        self, url: str, key: str, *, transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        self.url = mcp_endpoint(url)
        self._key = key
        self._transport = transport  # tests pass httpx2.ASGITransport(app)

    def _http_client(self, failures: list[tuple[int, str]]) -> httpx2.AsyncClient:
        async def record_failure(response: httpx2.Response) -> None:
            # The SDK turns an HTTP error into a generic MCPError; keep the status and reason.
            if response.status_code >= 400:
                await response.aread()
                failures.append((response.status_code, _error_message(response)))

        return httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {self._key}"},
            timeout=TIMEOUT,
            transport=self._transport,
            event_hooks={"response": [record_failure]},
            # Never send a loopback call through HTTP_PROXY (as the CLI's other commands).
            trust_env=False,
            verify=default_ssl_context(),
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[tuple[ClientSession, types.InitializeResult]]:
        """An initialised upstream session; failures of the connection become :class:`BridgeError`.

        An error answer to a request made inside the block (``MCPError``) is re-raised as is.
        """
        failures: list[tuple[int, str]] = []
        try:
            async with AsyncExitStack() as stack:
                http = await stack.enter_async_context(self._http_client(failures))
                read, write = await stack.enter_async_context(
                    streamable_http_client(self.url, http_client=http)
                )
                session = await stack.enter_async_context(ClientSession(read, write))
                initialized = await session.initialize()
                yield session, initialized
        except Exception as exc:  # classified below, never swallowed
            explained = self.explain(exc, failures)
            if explained is exc:
                raise
            raise explained from exc

    def explain(self, exc: BaseException, failures: list[tuple[int, str]]) -> Exception:
        """The exception to raise for ``exc``: a :class:`BridgeError` or the MCP error itself."""
        leaves = list(_leaves(exc))
        for leaf in leaves:
            if isinstance(leaf, BridgeError):
                return leaf
        refused = [reason for status, reason in failures if status == 401]
        if refused:
            return BridgeError(
                f"the MCP server at {self.url} refused the API key ({refused[0]}):"
                f" set {KEY_ENV} to a valid key; {CREATE_KEY_HINT}"
            )
        for leaf in leaves:
            if isinstance(leaf, httpx2.ConnectError | httpx2.ConnectTimeout):
                return BridgeError(
                    f"the MCP server at {self.url} is not running ({type(leaf).__name__}):"
                    f" start the platform with `ai-suite up`, or point --url / {URL_ENV} at it"
                )
        if failures:
            status, reason = failures[0]
            return BridgeError(
                f"the MCP server at {self.url} answered HTTP {status} ({reason}):"
                f" check that --url / {URL_ENV} is the MCP server's address"
            )
        for leaf in leaves:
            if isinstance(leaf, MCPError):
                return leaf  # an error answer to the request itself (e.g. an unknown tool)
        for leaf in leaves:
            if isinstance(leaf, httpx2.HTTPError):
                return BridgeError(
                    f"the MCP server at {self.url} failed: {type(leaf).__name__}: {leaf}"
                )
        return exc if isinstance(exc, Exception) else RuntimeError(repr(exc))

    async def check(self) -> tuple[types.InitializeResult, int]:
        """Connect once with the key (before serving) so that a bad setup fails at start."""
        async with self.session() as (session, initialized):
            tools = await session.list_tools()
        return initialized, len(tools.tools)


def build_server(upstream: Upstream, *, instructions: str | None = None) -> Server[Any]:
    """The stdio-side server: ``tools/list`` and ``tools/call``, both forwarded upstream.

    Only these two handlers are registered, so the capabilities it advertises are
    ``tools`` and nothing else; ``serverInfo.version`` is the platform's version.
    """

    async def list_tools(
        _: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        try:
            async with upstream.session() as (session, _initialized):
                return await session.send_request(
                    types.ListToolsRequest(params=params), types.ListToolsResult
                )
        except BridgeError as exc:
            log.error("%s", exc)
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from exc

    async def call_tool(
        _: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            async with upstream.session() as (session, _initialized):
                # The request as received and the result as sent: content, is_error and
                # structured_content of a pending approval, its approval_id, every refusal.
                # (ClientSession.call_tool would also list the tools again to validate
                # output schemas, which is the assistant's business, not the bridge's.)
                return await session.send_request(
                    types.CallToolRequest(params=params), types.CallToolResult
                )
        except BridgeError as exc:
            log.error("%s", exc)
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )

    return Server(
        SERVER_NAME,
        version=package_version(),
        instructions=instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(upstream: Upstream) -> None:
    """Check the upstream and the key, then serve MCP on stdin/stdout until stdin closes."""
    initialized, tool_count = await upstream.check()
    log.info("bridging stdio to %s: %d tools for this key", upstream.url, tool_count)
    server = build_server(upstream, instructions=initialized.instructions)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
