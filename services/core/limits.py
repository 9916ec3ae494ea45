"""Limits before work: body size, JSON nesting depth and body read time, for every service.

A pure-ASGI middleware (``RequestLimitsMiddleware``) that refuses a request before the
application spends memory or CPU on it:

- ``Content-Length`` over the limit: 413 at once, the body is never read;
- a body without ``Content-Length`` (chunked) is counted as it arrives and refused with 413
  as soon as it passes the limit; nothing beyond the limit is ever buffered here;
- a JSON body nested deeper than the limit: 400, found by a streaming scan of the raw bytes
  (``[``/``{`` outside strings) before any parser sees it;
- a body that stalls longer than the read timeout between two chunks: 408.

Refusals carry ``Connection: close`` so the server does not read (and discard) the rest of
an unread body. The application's own answer, if it sends one after a refusal, is dropped.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.errors import error_body

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 64
DEFAULT_BODY_READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    body_read_timeout: float = DEFAULT_BODY_READ_TIMEOUT


_TOKENS = re.compile(rb'["\\\[\]{}]')


class JsonDepthScanner:
    """The deepest nesting of ``[``/``{`` in JSON text fed in pieces, strings excluded.

    Cheap and streaming: it keeps four fields of state and looks only at the structural
    bytes (quotes, backslashes, brackets), so any split of the input gives the same answer.
    It does not validate JSON; the parser does that later, on bodies that passed.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.max_depth = 0
        self.in_string = False
        self.escaped = False  # the previous piece ended with a backslash inside a string

    def feed(self, data: bytes) -> int:
        skip = -1
        if self.escaped and data:
            skip = 0
            self.escaped = False
        for match in _TOKENS.finditer(data):
            pos = match.start()
            if pos == skip:
                continue
            char = data[pos]
            if self.in_string:
                if char == 0x5C:  # backslash: the next byte is escaped
                    if pos + 1 < len(data):
                        skip = pos + 1
                    else:
                        self.escaped = True
                elif char == 0x22:
                    self.in_string = False
            elif char == 0x22:
                self.in_string = True
            elif char in (0x5B, 0x7B):
                self.depth += 1
                if self.depth > self.max_depth:
                    self.max_depth = self.depth
            elif char in (0x5D, 0x7D) and self.depth > 0:
                self.depth -= 1
        return self.max_depth


def json_depth(data: bytes) -> int:
    scanner = JsonDepthScanner()
    return scanner.feed(data)


REFUSAL_REASONS = ("body_too_large", "json_too_deep", "body_timeout")


class LimitMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.refused = Counter(
            "http_requests_refused_total",
            "Requests refused before the application read them (413, 400 or 408), by limit.",
            ["service", "reason"],
            registry=registry,
        )
        for reason in REFUSAL_REASONS:  # zero series, so that rate() sees the first one
            self.refused.labels(service, reason)


class _Refused(Exception):
    """Raised into the application from ``receive`` when the body breaks a limit."""

    def __init__(self, status: int, message: str, code: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.reason = reason


def _is_json(content_type: bytes | None) -> bool:
    # FastAPI parses a body without Content-Type as JSON too.
    return content_type is None or b"json" in content_type.lower()


def _mib(size: int) -> str:
    return f"{size / 1048576:g} MiB" if size >= 1048576 else f"{size} bytes"


class RequestLimitsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: RequestLimits,
        service: str = "",
        metrics: LimitMetrics | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.service = service
        self.metrics = metrics

    def _too_large(self) -> _Refused:
        limit = self.limits.max_body_bytes
        return _Refused(
            413,
            f"request body is larger than the limit of {limit} bytes ({_mib(limit)}, "
            "AI_SUITE_MAX_BODY_BYTES): send less per request (split documents or files "
            "into several requests) or raise the limit on the service",
            "request_too_large",
            "body_too_large",
        )

    def _too_deep(self) -> _Refused:
        limit = self.limits.max_json_depth
        return _Refused(
            400,
            f"JSON body is nested deeper than {limit} levels (AI_SUITE_MAX_JSON_DEPTH): "
            "flatten the structure",
            "json_too_deep",
            "json_too_deep",
        )

    def _too_slow(self) -> _Refused:
        timeout = self.limits.body_read_timeout
        return _Refused(
            408,
            f"the request body stalled for more than {timeout:g} s "
            "(AI_SUITE_BODY_READ_TIMEOUT): send the body without pauses",
            "request_timeout",
            "body_timeout",
        )

    async def _refuse(self, send: Send, refused: _Refused) -> None:
        if self.metrics is not None:
            self.metrics.refused.labels(self.service, refused.reason).inc()
        body = json.dumps(error_body(refused.status, refused.message, code=refused.code)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": refused.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_long = length is not None and length.strip().isdigit()
        if too_long and int(length or 0) > self.limits.max_body_bytes:
            await self._refuse(send, self._too_large())
            return

        limits = self.limits
        scanner = JsonDepthScanner() if _is_json(headers.get(b"content-type")) else None
        received = 0
        body_done = False
        refused: _Refused | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done, refused
            if refused is not None:
                raise refused
            if body_done:  # only http.disconnect is left; no timeout on waiting for it
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), limits.body_read_timeout)
            except TimeoutError:
                refused = self._too_slow()
                raise refused from None
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limits.max_body_bytes:
                refused = self._too_large()
                raise refused
            if scanner is not None and scanner.feed(chunk) > limits.max_json_depth:
                refused = self._too_deep()
                raise refused
            if not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None and not started:
                return  # the application's answer to a refused body; ours goes instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if refused is None or started:
                raise
        if refused is not None and not started:
            await self._refuse(send, refused)
