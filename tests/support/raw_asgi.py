"""Driving an ASGI app with hand-made ``receive`` messages (test helper).

httpx always hands the app the whole body it was given; these helpers let a test see how
much of a body the app actually pulled, and feed a body that never ends or that stalls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message


@dataclass
class RawResult:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    pulled: int = 0  # body bytes the app took from receive()
    receives: int = 0  # receive() calls that returned a body chunk

    def json(self) -> Any:
        return json.loads(self.body)


def endless(chunk: bytes) -> Iterator[bytes]:
    while True:
        yield chunk


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    chunks: Iterator[bytes] | list[bytes],
    *,
    headers: dict[str, str] | None = None,
    stall_after: int | None = None,
) -> RawResult:
    """Send ``chunks`` as the body (``more_body`` until the list ends; an iterator may be
    endless). ``stall_after``: after that many chunks, ``receive`` never returns again."""
    result = RawResult()
    source = iter(chunks)
    pending = next(source, None)
    sent = 0
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *raw_headers],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
    }
    disconnected = asyncio.Event()

    async def receive() -> Message:
        nonlocal pending, sent
        if pending is None:
            await disconnected.wait()
            return {"type": "http.disconnect"}
        if stall_after is not None and sent >= stall_after:
            await asyncio.Event().wait()  # never set: the client went quiet
        chunk = pending
        pending = next(source, None)
        sent += 1
        result.pulled += len(chunk)
        result.receives += 1
        return {"type": "http.request", "body": chunk, "more_body": pending is not None}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")
            if not message.get("more_body", False):
                disconnected.set()

    await app(scope, receive, send)
    return result
