"""One ASGI middleware for request ids, request metrics and the access log.

Written as plain ASGI (not ``BaseHTTPMiddleware``) so streaming responses pass
through chunk by chunk and the duration covers the whole body.
"""

from __future__ import annotations

import logging
import time

from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.context import (
    REQUEST_ID_HEADER,
    accept_request_id,
    new_request_id,
    request_id_var,
    route_var,
    user_var,
)
from services.core.logging import redact
from services.core.metrics import EXCLUDED_PATHS, UNMATCHED_ROUTE, HttpMetrics

_HEADER = REQUEST_ID_HEADER.lower().encode()
# Route templates by request line: matching every route costs more than the rest of a
# light request's bookkeeping. Bounded, since paths come from callers.
_TEMPLATE_CACHE_SIZE = 4096


def request_id_of(raw: bytes | None) -> str:
    """The caller's ``X-Request-ID`` when well-formed and not a credential, else a new id.

    A caller's id is logged, echoed and forwarded upstream; one shaped like a key
    (``ais_...``, ``sk-...``) must be none of these, so it is replaced like a malformed one.
    """
    request_id = accept_request_id(raw.decode("latin-1") if raw else None)
    return request_id if redact(request_id) == request_id else new_request_id()


def route_template(router: Router, scope: Scope) -> str:
    """The route's path template (``/v1/items/{id}``), or one shared label if none matches."""
    for route in router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", UNMATCHED_ROUTE) or UNMATCHED_ROUTE
    return UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, service: str, router: Router, metrics: HttpMetrics) -> None:
        self.app = app
        self.service = service
        self.router = router
        self.metrics = metrics
        self.log = logging.getLogger(f"ai_suite.{service}.access")
        self._templates: dict[tuple[int, str, str, str], str] = {}

    def _route_template(self, scope: Scope) -> str:
        # The number of routes is part of the key: an app may add routes after this
        # middleware was built (create_app adds them after build_service_app). No service
        # routes by Host header, so the method and path decide the match.
        key = (
            len(self.router.routes),
            scope.get("method", ""),
            scope.get("root_path", ""),
            scope.get("path", ""),
        )
        template = self._templates.get(key)
        if template is None:
            template = route_template(self.router, scope)
            if len(self._templates) >= _TEMPLATE_CACHE_SIZE:
                self._templates.clear()
            self._templates[key] = template
        return template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        raw = dict(scope.get("headers") or []).get(_HEADER)
        request_id = request_id_of(raw)
        route = self._route_template(scope)
        tokens = (request_id_var.set(request_id), route_var.set(route), user_var.set(None))
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                headers.append((_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The router records the route it chose in the scope; that also sees
            # into routers added with include_router, which route_template cannot.
            chosen = getattr(scope.get("route"), "path", None)
            if chosen:
                route = chosen
            elapsed = time.perf_counter() - started
            path = scope.get("path", "")
            method = scope.get("method", "GET")
            if path not in EXCLUDED_PATHS:
                self.metrics.requests.labels(self.service, method, route, str(status)).inc()
                self.metrics.duration.labels(self.service, method, route).observe(elapsed)
                self.log.info(
                    "%s %s %s",
                    method,
                    route,
                    status,
                    extra={
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "method": method,
                        "user": scope["state"].get("user"),
                    },
                )
            request_id_var.reset(tokens[0])
            route_var.reset(tokens[1])
            user_var.reset(tokens[2])
