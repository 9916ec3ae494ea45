"""Limits before work (services/core/limits.py): body size, JSON depth, body read timeout."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Body, FastAPI
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from services.core.app import build_service_app
from services.core.errors import install_error_handlers
from services.core.limits import JsonDepthScanner, RequestLimits, json_depth
from services.core.server import LimitedHttpToolsProtocol, uvicorn_config
from services.core.settings import CoreSettings
from tests.support.raw_asgi import call, endless

LIMIT = 1000


def make_app(**limits: Any) -> tuple[FastAPI, list[bytes]]:
    """A service app whose handlers record the bodies they read."""
    values = {"max_body_bytes": LIMIT, "max_json_depth": 8, **limits}
    parts = build_service_app("svc", limits=RequestLimits(**values))
    install_error_handlers(parts.app)
    app = parts.app
    seen: list[bytes] = []

    @app.post("/raw")
    async def raw(request: Request) -> dict:
        body = await request.body()
        seen.append(body)
        return {"size": len(body)}

    @app.post("/json")
    async def parsed(payload: Annotated[Any, Body()] = None) -> dict:
        seen.append(json.dumps(payload).encode())
        return {"ok": True}

    return app, seen


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def test_content_length_over_the_limit_is_refused_before_the_handler_reads() -> None:
    app, seen = make_app()
    result = await call(
        app, "POST", "/raw", [b"x" * (LIMIT + 1)], headers={"content-length": str(LIMIT + 1)}
    )
    assert result.status == 413
    assert result.receives == 0  # nothing was read, not even the first chunk
    assert seen == []
    error = result.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "request_too_large"
    assert "AI_SUITE_MAX_BODY_BYTES" in error["message"]
    assert str(LIMIT) in error["message"]
    assert result.headers["connection"] == "close"


async def test_a_chunked_body_is_cut_off_at_the_limit_not_read_to_the_end() -> None:
    app, seen = make_app()
    result = await call(app, "POST", "/raw", endless(b"y" * 100))  # never ends by itself
    assert result.status == 413
    assert LIMIT < result.pulled <= LIMIT + 100
    assert seen == []
    assert result.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "chunked"])
async def test_exactly_the_limit_passes_and_one_byte_more_does_not(with_length: bool) -> None:
    app, seen = make_app()
    for size, status in ((LIMIT, 200), (LIMIT + 1, 413)):
        body = b"z" * size
        headers = {"content-type": "text/plain"}
        if with_length:
            headers["content-length"] = str(size)
        result = await call(app, "POST", "/raw", [body[:300], body[300:]], headers=headers)
        assert result.status == status, (size, result.body)
    assert seen == [b"z" * LIMIT]


async def test_the_refusal_has_a_request_id_and_is_counted_like_any_answer() -> None:
    app, _ = make_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as client:
        response = await client.post("/raw", content=b"x" * (LIMIT + 1))
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 413
    assert response.headers["x-request-id"]
    assert 'route="/raw",service="svc",status="413"' in metrics
    assert 'http_requests_refused_total{reason="body_too_large",service="svc"} 1.0' in metrics
    assert 'http_requests_refused_total{reason="json_too_deep",service="svc"} 0.0' in metrics


async def test_json_deeper_than_the_limit_is_a_400_before_parsing() -> None:
    app, seen = make_app()
    json_type = {"content-type": "application/json"}
    ok = await call(app, "POST", "/json", [nested(8)], headers=json_type)
    deep = await call(app, "POST", "/json", [nested(9)], headers=json_type)
    assert ok.status == 200
    assert deep.status == 400
    error = deep.json()["error"]
    assert error["code"] == "json_too_deep"
    assert "AI_SUITE_MAX_JSON_DEPTH" in error["message"]
    assert "8 levels" in error["message"]
    assert len(seen) == 1


async def test_json_depth_is_checked_without_a_content_type_but_not_for_plain_text() -> None:
    app, _ = make_app()
    untyped = await call(app, "POST", "/json", [nested(20)])
    text = await call(app, "POST", "/raw", [nested(20)], headers={"content-type": "text/plain"})
    assert untyped.status == 400
    assert text.status == 200


async def test_brackets_inside_strings_do_not_count() -> None:
    app, _ = make_app()
    body = json.dumps({"a": '[[[[[[[[[[{{{{{{{{{{ \\" [[[[[[[[[['}).encode()
    result = await call(app, "POST", "/json", [body], headers={"content-type": "application/json"})
    assert result.status == 200, result.body


async def test_a_deep_body_is_refused_while_streaming() -> None:
    app, _ = make_app()
    result = await call(
        app, "POST", "/json", endless(b"[" * 4), headers={"content-type": "application/json"}
    )
    assert result.status == 400
    assert result.pulled <= 12  # the third chunk passed depth 8


async def test_a_body_that_stalls_gets_408() -> None:
    app, seen = make_app(body_read_timeout=0.05)
    result = await call(
        app,
        "POST",
        "/raw",
        [b"a" * 10, b"b" * 10],
        headers={"content-type": "text/plain"},
        stall_after=1,
    )
    assert result.status == 408
    error = result.json()["error"]
    assert error["code"] == "request_timeout"
    assert "AI_SUITE_BODY_READ_TIMEOUT" in error["message"]
    assert seen == []


async def test_waiting_for_the_disconnect_after_the_body_has_no_timeout() -> None:
    # A streaming response listens for http.disconnect until it ends; that wait is not a
    # stalled body and must not end in 408.
    parts = build_service_app("svc", limits=RequestLimits(body_read_timeout=0.01))
    app = parts.app

    @app.post("/slow")
    async def slow(request: Request) -> dict:
        await request.body()
        import asyncio

        await asyncio.sleep(0.05)
        return {"ok": True}

    result = await call(app, "POST", "/slow", [b"{}"], headers={"content-type": "application/json"})
    assert result.status == 200


async def test_get_requests_and_the_probes_are_not_affected() -> None:
    app, _ = make_app(max_body_bytes=1)
    result = await call(app, "GET", "/health", [b""])
    assert result.status == 200


# -- the scanner ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


def real_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((real_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((real_depth(v) for v in value.values()), default=0)
    return 0


@given(value=json_values, ascii_only=st.booleans(), cuts=st.lists(st.integers(0, 10_000)))
def test_scanner_depth_equals_the_real_nesting_for_any_split(
    value: Any, ascii_only: bool, cuts: list[int]
) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode()
    scanner = JsonDepthScanner()
    points = sorted({c % (len(data) + 1) for c in cuts})
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        scanner.feed(data[start:end])
    assert scanner.max_depth == real_depth(value) == json_depth(data)


@given(text=st.text(alphabet='[]{}"\\ab', max_size=40))
def test_strings_full_of_brackets_and_escapes_count_as_nothing(text: str) -> None:
    assert json_depth(json.dumps({"k": [text]}).encode()) == 2
    assert json_depth(json.dumps(text).encode()) == 0


def test_an_escaped_quote_split_across_pieces_keeps_the_string_open() -> None:
    scanner = JsonDepthScanner()
    for piece in (b'["a\\', b'"[[[', b'"]'):
        scanner.feed(piece)
    assert scanner.max_depth == 1


# -- settings and uvicorn ----------------------------------------------------------------


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AI_SUITE_MAX_BODY_BYTES",
        "AI_SUITE_MAX_JSON_DEPTH",
        "AI_SUITE_BODY_READ_TIMEOUT",
        "AI_SUITE_MAX_HEADER_BYTES",
        "AI_SUITE_KEEP_ALIVE_TIMEOUT",
        "AI_SUITE_HEADER_READ_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    defaults = CoreSettings()
    assert defaults.request_limits == RequestLimits(16 * 1024 * 1024, 64, 30.0)
    assert (defaults.max_header_bytes, defaults.keep_alive_timeout) == (65_536, 5)
    assert defaults.header_read_timeout == 30.0
    monkeypatch.setenv("AI_SUITE_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("AI_SUITE_MAX_JSON_DEPTH", "10")
    monkeypatch.setenv("AI_SUITE_BODY_READ_TIMEOUT", "2.5")
    assert CoreSettings().request_limits == RequestLimits(2048, 10, 2.5)
    monkeypatch.setenv("AI_SUITE_MAX_BODY_BYTES", "0")
    with pytest.raises(ValueError, match="AI_SUITE_MAX_BODY_BYTES"):
        CoreSettings()


def test_uvicorn_limits_headers_and_keep_alive() -> None:
    config = uvicorn_config(
        FastAPI(), host="127.0.0.1", port=0, max_header_bytes=4096, keep_alive_timeout=3
    )
    assert config.http is LimitedHttpToolsProtocol
    assert config.header_timeout == 30.0
    assert config.max_header_bytes == 4096
    assert config.loop == "asyncio"
    assert uvicorn_config(FastAPI(), host="127.0.0.1", port=0, loop="uvloop").loop == "uvloop"
    assert config.timeout_keep_alive == 3
