"""The inference test double speaks the OpenAI shapes the gateway and tests rely on."""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.stubs.inference import EMBEDDING_DIMENSIONS, create_stub_app, main

SERVED = "stub-model:latest"


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://stub")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_stub_app()) as c:
        yield c


def chat_body(text: str = "hello there", **extra: object) -> dict[str, object]:
    return {"model": SERVED, "messages": [{"role": "user", "content": text}], **extra}


def sse_events(body: str) -> list[str]:
    assert body.endswith("\n\n")
    events = [block for block in body.split("\n\n") if block]
    assert all(event.startswith("data: ") for event in events)
    return [event.removeprefix("data: ") for event in events]


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_models_default_and_custom() -> None:
    async with client_for(create_stub_app()) as c:
        listed = (await c.get("/v1/models")).json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == [SERVED]
    assert listed["data"][0]["object"] == "model"
    async with client_for(create_stub_app(model_ids=["a", "b"])) as c:
        listed = (await c.get("/v1/models")).json()
    assert [m["id"] for m in listed["data"]] == ["a", "b"]


async def test_completion_shape_and_echo() -> None:
    body = chat_body()
    body["messages"] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
    ]
    body["model"] = "any-name"
    async with client_for(create_stub_app(accept_any_model=True)) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["x-stub-model"] == "any-name"
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert isinstance(data["created"], int)
    assert data["model"] == "any-name"
    (choice,) = data["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": "stub reply to: second question"}
    usage = data["usage"]
    assert usage["completion_tokens"] == 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_streaming_chunks(client: httpx.AsyncClient) -> None:
    async with client.stream(
        "POST", "/v1/chat/completions", json=chat_body("one two three", stream=True)
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = (await response.aread()).decode()
    events = sse_events(body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == SERVED
        assert len(chunk["choices"]) == 1
        assert chunk["choices"][0]["index"] == 0
        assert "delta" in chunk["choices"][0]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content_chunks = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) == 6  # one per word of "stub reply to: one two three"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "stub reply to: one two three"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


async def test_streaming_usage_chunk_on_request(client: httpx.AsyncClient) -> None:
    body = chat_body("hi", stream=True, stream_options={"include_usage": True})
    response = await client.post("/v1/chat/completions", json=body)
    chunks = [json.loads(e) for e in sse_events(response.text)[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_fail_next_then_recover(client: httpx.AsyncClient) -> None:
    config = await client.post("/_stub/config", json={"fail_next": 2, "fail_status": 502})
    assert config.status_code == 200
    assert config.json()["fail_next"] == 2
    statuses = [
        (await client.post("/v1/chat/completions", json=chat_body())).status_code for _ in range(3)
    ]
    assert statuses == [502, 502, 200]
    stats = (await client.get("/_stub/stats")).json()
    assert stats["requests"]["chat_completions"] == 3
    assert stats["failures_injected"] == 2
    assert stats["config"]["fail_next"] == 0


async def test_injected_failure_uses_openai_error_shape(client: httpx.AsyncClient) -> None:
    await client.post("/_stub/config", json={"fail_next": 1})
    response = await client.post("/v1/chat/completions", json=chat_body())
    assert response.status_code == 503  # the default fail_status
    assert response.json()["error"]["type"] == "stub_injected_failure"


async def test_delay(client: httpx.AsyncClient) -> None:
    await client.post("/_stub/config", json={"delay_seconds": 0.05})
    started = time.monotonic()
    response = await client.post("/v1/chat/completions", json=chat_body())
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.05


@pytest.mark.parametrize(
    "config",
    [{"fail_next": -1}, {"fail_status": 200}, {"delay_seconds": -1}, {"unknown": 1}, [1]],
)
async def test_bad_config_rejected(client: httpx.AsyncClient, config: object) -> None:
    response = await client.post("/_stub/config", json=config)
    assert response.status_code == 422
    assert (await client.get("/_stub/stats")).json()["config"]["fail_next"] == 0


async def test_stats_count_requests_and_models(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    await client.get("/v1/models")
    await client.post("/v1/chat/completions", json=chat_body())
    await client.post("/v1/chat/completions", json={**chat_body(), "model": "other"})
    stats = (await client.get("/_stub/stats")).json()
    assert stats["requests"] == {"health": 1, "models": 1, "chat_completions": 2}
    assert stats["total_requests"] == 4
    assert stats["models"] == {SERVED: 1, "other": 1}


async def test_reset(client: httpx.AsyncClient) -> None:
    await client.post("/_stub/config", json={"fail_next": 5})
    await client.post("/v1/chat/completions", json=chat_body())
    stats = (await client.post("/_stub/reset")).json()
    assert stats["total_requests"] == 0
    assert stats["config"]["fail_next"] == 0
    assert (await client.post("/v1/chat/completions", json=chat_body())).status_code == 200


async def test_unknown_model_is_404_when_ids_given() -> None:
    async with client_for(create_stub_app(model_ids=["only"])) as c:
        response = await c.post("/v1/chat/completions", json=chat_body())
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"
        ok = await c.post("/v1/chat/completions", json={**chat_body(), "model": "only"})
        assert ok.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "x"}]},
        {"model": SERVED, "messages": []},
        {"model": SERVED},
        ["not", "an", "object"],
    ],
)
async def test_malformed_requests(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert "error" in response.json()


async def test_invalid_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


def test_main_runs_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_run(app: FastAPI, *, host: str, port: int, access_log: bool) -> None:
        seen.update(app=app, host=host, port=port, access_log=access_log)

    monkeypatch.setattr("tests.stubs.inference.uvicorn.run", fake_run)
    main(["--port", "9123", "--model", "a", "--model", "b"])
    assert seen["host"] == "127.0.0.1"
    assert seen["port"] == 9123
    assert seen["access_log"] is True
    assert isinstance(seen["app"], FastAPI)
    main(["--no-access-log"])
    assert seen["access_log"] is False


async def test_unknown_model_is_404_by_default_like_ollama(client: httpx.AsyncClient) -> None:
    for path, body in (
        ("/v1/chat/completions", {**chat_body(), "model": "chat"}),
        ("/v1/completions", {"model": "chat", "prompt": "x"}),
        ("/v1/embeddings", {"model": "chat", "input": "x"}),
    ):
        response = await client.post(path, json=body)
        assert response.status_code == 404, path
        error = response.json()["error"]
        assert error["code"] == "model_not_found"
        assert error["param"] == "model"
        assert "`chat` does not exist" in error["message"]


async def test_served_models_can_change_at_runtime(client: httpx.AsyncClient) -> None:
    config = await client.post("/_stub/config", json={"model_ids": ["other:7b"]})
    assert config.json()["model_ids"] == ["other:7b"]
    listed = (await client.get("/v1/models")).json()
    assert [m["id"] for m in listed["data"]] == ["other:7b"]
    assert (await client.post("/v1/chat/completions", json=chat_body())).status_code == 404
    await client.post("/_stub/reset")
    assert (await client.post("/v1/chat/completions", json=chat_body())).status_code == 200


async def test_api_key_is_required_when_configured() -> None:
    async with client_for(create_stub_app(api_key="sk-stub-secret")) as c:
        assert (await c.get("/v1/models")).status_code == 401
        wrong = await c.post(
            "/v1/embeddings",
            json={"model": SERVED, "input": "x"},
            headers={"Authorization": "Bearer nope"},
        )
        assert wrong.status_code == 401
        assert wrong.json()["error"]["message"] == "invalid or missing API key"
        auth = {"Authorization": "Bearer sk-stub-secret"}
        assert (await c.get("/v1/models", headers=auth)).status_code == 200
        ok = await c.post("/v1/chat/completions", json=chat_body(), headers=auth)
        assert ok.status_code == 200
        assert (await c.get("/health")).status_code == 200  # probes need no key


async def test_legacy_completion(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/completions", json={"model": SERVED, "prompt": "say hi"})
    assert response.status_code == 200
    assert response.headers["x-stub-model"] == SERVED
    data = response.json()
    assert data["object"] == "text_completion"
    assert data["id"].startswith("cmpl-")
    (choice,) = data["choices"]
    assert choice == {
        "index": 0,
        "text": "stub reply to: say hi",
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}


async def test_legacy_completion_streams_with_usage(client: httpx.AsyncClient) -> None:
    body = {
        "model": SERVED,
        "prompt": ["one two"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await client.post("/v1/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == "stub reply to: one two"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 2
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    without = await client.post("/v1/completions", json={**body, "stream_options": None})
    assert all("usage" not in json.loads(e) for e in sse_events(without.text)[:-1])


async def test_embeddings_as_floats_and_base64(client: httpx.AsyncClient) -> None:
    floats = await client.post("/v1/embeddings", json={"model": SERVED, "input": ["a b", "c"]})
    assert floats.status_code == 200
    data = floats.json()
    assert data["object"] == "list"
    assert [d["index"] for d in data["data"]] == [0, 1]
    first = data["data"][0]["embedding"]
    assert len(first) == EMBEDDING_DIMENSIONS
    assert data["data"][0]["embedding"] != data["data"][1]["embedding"]
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    packed = await client.post(
        "/v1/embeddings", json={"model": SERVED, "input": "a b", "encoding_format": "base64"}
    )
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    decoded = struct.unpack(f"<{EMBEDDING_DIMENSIONS}f", raw)
    assert decoded == pytest.approx(first, abs=1e-6)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/embeddings", {"model": SERVED}, "input"),
        ("/v1/embeddings", {"model": SERVED, "input": [1.5]}, "input"),
        ("/v1/embeddings", {"model": SERVED, "input": "x", "encoding_format": "hex"}, None),
        ("/v1/completions", {"model": SERVED, "prompt": {}}, "prompt"),
        ("/v1/completions", {"prompt": "x"}, "model"),
    ],
)
async def test_new_routes_refuse_malformed_bodies(
    client: httpx.AsyncClient, path: str, body: dict[str, object], param: str | None
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 400
    if param:
        assert response.json()["error"]["param"] == param


async def test_fault_injection_covers_the_new_routes(client: httpx.AsyncClient) -> None:
    await client.post("/_stub/config", json={"fail_next": 2, "fail_status": 502})
    emb = await client.post("/v1/embeddings", json={"model": SERVED, "input": "x"})
    cmp = await client.post("/v1/completions", json={"model": SERVED, "prompt": "x"})
    assert (emb.status_code, cmp.status_code) == (502, 502)
    stats = (await client.get("/_stub/stats")).json()
    assert stats["requests"] == {"embeddings": 1, "completions": 1}
    assert stats["failures_injected"] == 2


async def test_main_passes_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, FastAPI] = {}
    monkeypatch.setattr("tests.stubs.inference.uvicorn.run", lambda app, **_: seen.update(app=app))
    main(["--accept-any-model", "--api-key", "k"])
    async with client_for(seen["app"]) as c:
        assert (await c.get("/v1/models")).status_code == 401
        auth = {"Authorization": "Bearer k"}
        body = {**chat_body(), "model": "anything"}
        response = await c.post("/v1/chat/completions", json=body, headers=auth)
        assert response.status_code == 200
