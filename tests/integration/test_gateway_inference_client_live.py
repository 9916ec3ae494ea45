"""The gateway's aiohttp client for inference requests against real sockets: answers and
streams relayed, kept-alive connections reused, and every failure raised as the httpx
exception UpstreamPool decides on (services/gateway/inference_client.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from services.core.context import request_id_var
from services.gateway.inference_client import AiohttpInferenceClient
from tests.stubs.inference import create_stub_app
from tests.support.live import free_port, serve_in_thread

CHAT = {"model": "stub-model:latest", "messages": [{"role": "user", "content": "hi there"}]}

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def client(**overrides: float) -> AiohttpInferenceClient:
    values = {
        "connect_timeout": 2.0,
        "read_timeout": 30.0,
        "pool_timeout": 10.0,
        "max_connections": 4,
        **overrides,
    }
    return AiohttpInferenceClient(
        connect_timeout=values["connect_timeout"],
        read_timeout=values["read_timeout"],
        pool_timeout=values["pool_timeout"],
        max_connections=int(values["max_connections"]),
    )


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server running ``handler`` per connection; yields its URL and a list that
    grows by one per accepted connection."""
    connections: list[int] = []

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", connections


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    await reader.readexactly(length)
    return head


@pytest.fixture
def stub() -> Iterator[str]:
    with serve_in_thread(create_stub_app()) as url:
        yield f"{url}/v1"


async def test_an_answer_and_a_stream_are_relayed_with_the_request_id(stub: str) -> None:
    upstream = client()
    token = request_id_var.set("req-abc")
    try:
        answer = await upstream.post(f"{stub}/chat/completions", CHAT, {"X-Extra": "1"})
        body = await answer.aread()
        await answer.aclose()
        stream = await upstream.post(f"{stub}/chat/completions", {**CHAT, "stream": True}, {})
        chunks = [chunk async for chunk in stream.aiter_raw()]
        await stream.aclose()
    finally:
        request_id_var.reset(token)
        await upstream.aclose()
    assert answer.status_code == 200
    assert answer.headers.get("content-type") == "application/json"
    assert b"stub reply to: hi there" in body
    assert stream.status_code == 200
    assert b"".join(chunks).endswith(b"data: [DONE]\n\n")


async def test_a_read_answer_reuses_its_connection_an_unread_stream_does_not() -> None:
    big = b"x" * (8 * 1024 * 1024)  # far more than the socket buffers hold

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            body = big if head.startswith(b"POST /big ") else b"ok"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            try:
                await writer.drain()
            except ConnectionError:
                return

    async with raw_server(answer) as (url, connections):
        upstream = client()
        try:
            for _ in range(3):
                answer_ = await upstream.post(f"{url}/small", CHAT, {})
                assert await answer_.aread() == b"ok"
                await answer_.aclose()
            reused = len(connections)
            unread = await upstream.post(f"{url}/big", CHAT, {})
            await unread.aclose()  # most of its body is still on the wire: the connection goes
            after = await upstream.post(f"{url}/small", CHAT, {})
            assert await after.aread() == b"ok"
            await after.aclose()
        finally:
            await upstream.aclose()
    assert reused == 1
    assert len(connections) == 2


async def test_a_stream_the_server_cuts_off_is_a_remote_protocol_error() -> None:
    async def cut_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\ndata:\r\n"
        )
        await writer.drain()  # and the connection closes without the last chunk

    async with raw_server(cut_off) as (url, _):
        upstream = client()
        try:
            stream = await upstream.post(f"{url}/v1/chat/completions", CHAT, {})
            with pytest.raises(httpx.RemoteProtocolError):
                async for _ in stream.aiter_raw():
                    pass
            await stream.aclose()
        finally:
            await upstream.aclose()


async def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with raw_server(silent) as (url, _):
        upstream = client(read_timeout=0.2)
        try:
            with pytest.raises(httpx.ReadTimeout):
                await upstream.post(f"{url}/v1/chat/completions", CHAT, {})
        finally:
            await upstream.aclose()


async def test_nothing_listening_is_a_connect_error() -> None:
    upstream = client()
    try:
        with pytest.raises(httpx.ConnectError):
            await upstream.post(f"http://127.0.0.1:{free_port()}/v1/chat/completions", CHAT, {})
    finally:
        await upstream.aclose()


async def test_a_full_pool_is_a_pool_timeout_until_a_stream_is_closed(stub: str) -> None:
    upstream = client(max_connections=1, pool_timeout=0.2)
    try:
        held = await upstream.post(f"{stub}/chat/completions", {**CHAT, "stream": True}, {})
        with pytest.raises(httpx.PoolTimeout):
            await upstream.post(f"{stub}/chat/completions", CHAT, {})
        await held.aclose()
        free = await upstream.post(f"{stub}/chat/completions", CHAT, {})
        await free.aread()
        await free.aclose()
    finally:
        await upstream.aclose()
    assert free.status_code == 200
