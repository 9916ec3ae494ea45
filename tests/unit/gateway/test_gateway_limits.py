"""The gateway's forwarded routes: the key is checked before the body is read, the body is
streamed to the target, and the core limits apply (docs/security.md, limits before work)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from anyio import to_thread
from fastapi import FastAPI
from starlette.requests import Request

from services.gateway.settings import GatewaySettings
from tests.support.raw_asgi import call, endless
from tests.unit.gateway.conftest import MakeGateway

TARGETS = {"mcp_url": "http://mcp.test", "rag_url": "http://rag.test"}
FORWARDED = ["/v1/tools/write_file/call", "/v1/approvals/1/decision", "/v1/rag/query"]


def echo_target() -> tuple[FastAPI, list[bytes]]:
    """The MCP server / RAG service stand-in: records each body it received."""
    app = FastAPI()
    bodies: list[bytes] = []

    @app.api_route("/{path:path}", methods=["POST", "GET"])
    async def echo(request: Request) -> dict:
        body = await request.body()
        bodies.append(body)
        return {"size": len(body), "chunked": "content-length" not in request.headers}

    return app, bodies


@pytest.mark.parametrize("path", FORWARDED)
@pytest.mark.parametrize(
    "auth", [None, "Bearer ais_not-a-real-key", "Basic abc"], ids=["none", "bad", "basic"]
)
async def test_no_valid_key_is_401_before_a_byte_of_the_body_is_read(
    make_gateway: MakeGateway, path: str, auth: str | None
) -> None:
    target, bodies = echo_target()
    gateway = await make_gateway({"mcp.test": target, "rag.test": target}, **TARGETS)
    headers = {"content-type": "application/json", "content-length": str(10 * 1024 * 1024)}
    if auth:
        headers["authorization"] = auth
    result = await call(gateway.app, "POST", path, endless(b" " * 65536), headers=headers)
    assert result.status == 401
    assert result.receives == 0
    assert result.json()["error"]["code"] == "invalid_api_key"
    assert result.headers["connection"] == "close"  # the unread body is not drained
    assert bodies == []
    assert gateway.router.sent == []


async def test_a_chunked_body_without_a_key_is_401_unread(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway()
    result = await call(
        gateway.app,
        "POST",
        "/v1/tools/x/call",
        endless(b"{" * 1000),
        headers={"transfer-encoding": "chunked"},
    )
    assert result.status == 401
    assert result.receives == 0


async def test_an_oversized_body_without_a_key_is_refused_unread(
    make_gateway: MakeGateway,
) -> None:
    gateway = await make_gateway()
    result = await call(
        gateway.app,
        "POST",
        "/v1/rag/query",
        endless(b" " * 65536),
        headers={"content-length": str(300 * 1024 * 1024)},
    )
    assert result.status == 413  # Content-Length is checked even before the key
    assert result.receives == 0


async def test_with_a_key_the_body_is_streamed_to_the_target(make_gateway: MakeGateway) -> None:
    target, bodies = echo_target()
    gateway = await make_gateway({"mcp.test": target, "rag.test": target}, **TARGETS)
    payload = json.dumps({"arguments": {"content": "x" * 200_000}}).encode()
    pieces = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
    result = await call(
        gateway.app,
        "POST",
        "/v1/tools/write_file/call",
        pieces,
        headers={
            "authorization": gateway.auth()["Authorization"],
            "content-type": "application/json",
            "content-length": str(len(payload)),
        },
    )
    assert result.status == 200, result.body
    assert result.json() == {"size": len(payload), "chunked": True}
    assert bodies == [payload]


async def test_with_a_key_a_body_over_the_limit_is_413(make_gateway: MakeGateway) -> None:
    target, bodies = echo_target()
    gateway = await make_gateway(
        {"mcp.test": target, "rag.test": target}, max_body_bytes=100_000, **TARGETS
    )
    result = await call(
        gateway.app,
        "POST",
        "/v1/tools/write_file/call",
        endless(b" " * 10_000),
        headers={"authorization": gateway.auth()["Authorization"], "transfer-encoding": "chunked"},
    )
    assert result.status == 413
    assert result.pulled <= 110_000
    assert bodies == []  # the target never got a complete body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/rag/query"])
async def test_deep_json_is_400_on_the_gateway(make_gateway: MakeGateway, path: str) -> None:
    target, bodies = echo_target()
    gateway = await make_gateway({"mcp.test": target, "rag.test": target}, **TARGETS)
    body = b'{"model": "chat", "messages": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    response = await gateway.client.post(
        path,
        content=body,
        headers={**gateway.auth(), "content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "json_too_deep"
    assert "64" in error["message"]
    assert bodies == []


@pytest.mark.parametrize("threads", [1, 3])
async def test_gateway_threads_caps_the_thread_pool_while_it_runs(
    make_gateway: MakeGateway, threads: int
) -> None:
    gateway = await make_gateway(threads=threads)
    limiter = to_thread.current_default_thread_limiter()
    default = limiter.total_tokens
    release = threading.Event()
    async with gateway.app.router.lifespan_context(gateway.app):
        assert limiter.total_tokens == threads
        jobs = [asyncio.ensure_future(to_thread.run_sync(release.wait)) for _ in range(threads + 2)]
        for _ in range(50):  # every job reaches the limiter (a few steps each)
            await asyncio.sleep(0)
        busy, waiting = limiter.borrowed_tokens, limiter.statistics().tasks_waiting
        release.set()
        await asyncio.gather(*jobs)
    assert busy == threads
    assert waiting == 2  # the two others waited for a thread
    assert default == 40  # anyio's, which the gateway would otherwise run with


def test_gateway_threads_must_be_at_least_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_THREADS", "0")
    with pytest.raises(ValueError, match="GATEWAY_THREADS"):
        GatewaySettings()
    monkeypatch.setenv("GATEWAY_THREADS", "1")
    assert GatewaySettings().threads == 1
