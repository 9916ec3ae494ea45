"""Forwarding the platform's other APIs through the gateway.

One URL and one key serve everything: ``/v1/tools`` and ``/v1/approvals`` go to
the MCP server, ``/v1/rag/...`` to the RAG service. The caller's Authorization
and request id travel with the request; the target service authorises it against the
same security database.

The gateway authenticates the key itself first (401 from the same AccessControl as its
other routes) before a byte of the body is read, then streams the body to the target
instead of buffering it; the body's size and depth are limited by the core middleware
(services/core/limits.py) as it streams through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from services.core.errors import ApiError
from services.gateway.proxy import admit
from services.security.fairness import Fairness
from services.security.http_auth import authenticate

# Request headers worth passing on; hop-by-hop and host headers are not.
_FORWARDED_REQUEST_HEADERS = ("authorization", "content-type", "accept", "accept-language")
_DROPPED_RESPONSE_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "server", "date"}
)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Target:
    service: str  # human name for error messages
    base_url: str
    upstream_prefix: str  # path on the target that the gateway prefix maps to


def add_forwarding(
    app: FastAPI, client: httpx.AsyncClient, routes: dict[str, Target], fairness: Fairness
) -> None:
    """Mount a forwarding route for each gateway prefix in ``routes``."""
    for prefix, target in routes.items():
        endpoint = _forwarder(client, prefix, target, fairness)
        app.add_api_route(prefix, endpoint, methods=METHODS, include_in_schema=False)
        app.add_api_route(
            prefix + "/{path:path}", endpoint, methods=METHODS, include_in_schema=False
        )


def _forwarder(
    client: httpx.AsyncClient, prefix: str, target: Target, fairness: Fairness
) -> Callable[[Request], Awaitable[Response]]:
    async def forward(request: Request) -> Response:
        try:
            principal = await authenticate(request)
            # The same per-key limits as the inference routes (the target service applies
            # its own too): a forwarded call that waits on a slow tool holds a slot.
            lease = await admit(fairness, principal)
        except ApiError as exc:
            if _has_body(request):  # unread: close rather than let the server drain it
                exc.headers = {**(exc.headers or {}), "Connection": "close"}
            raise
        try:
            return await _relay(client, request, prefix, target)
        finally:
            await fairness.release(lease)

    return forward


async def _relay(
    client: httpx.AsyncClient, request: Request, prefix: str, target: Target
) -> Response:
    rest = request.url.path[len(prefix) :]
    url = f"{target.base_url}{target.upstream_prefix}{rest}"
    headers = {
        name: request.headers[name]
        for name in _FORWARDED_REQUEST_HEADERS
        if name in request.headers
    }
    try:
        upstream = await client.request(
            request.method,
            url,
            params=request.query_params.multi_items(),
            content=request.stream() if _has_body(request) else None,
            headers=headers,
        )
    except httpx.TransportError as exc:
        raise ApiError(
            503,
            f"the {target.service} is not reachable at {target.base_url} "
            f"({type(exc).__name__}); check that it is running with `ai-suite status`",
            code="service_unavailable",
            headers={"Retry-After": "5"},
        ) from exc
    response_headers = {
        k: v
        for k, v in upstream.headers.items()
        if k.lower() not in _DROPPED_RESPONSE_HEADERS and k.lower() != "x-request-id"
    }
    return Response(upstream.content, status_code=upstream.status_code, headers=response_headers)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers
