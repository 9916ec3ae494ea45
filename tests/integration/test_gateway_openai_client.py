"""The gateway as OpenAI clients see it: the official ``openai`` package, real sockets."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from fastapi import FastAPI, Request

from tests.stubs.inference import create_stub_app
from tests.support.live import serve_in_thread


def client(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=10)


def test_chat_completion_round_trip(start_gateway, stub_upstream, keys) -> None:
    base = start_gateway(inference_url=stub_upstream)
    reply = client(base, keys.create("alice", "developer")).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello there"}]
    )
    assert reply.choices[0].message.content
    assert "hello there" in reply.choices[0].message.content


def test_streaming_chat_arrives_in_chunks(start_gateway, stub_upstream, keys) -> None:
    base = start_gateway(inference_url=stub_upstream)
    stream = client(base, keys.create("alice", "developer")).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "tell me a story"}], stream=True
    )
    chunks = [c for c in stream if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(chunks) > 2
    assert "tell me a story" in text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_models_list_shows_registry_and_auto(start_gateway, stub_upstream, keys) -> None:
    base = start_gateway(inference_url=stub_upstream)
    ids = [m.id for m in client(base, keys.create("bob", "viewer")).models.list()]
    assert ids[:3] == ["auto", "chat", "code"]


def test_wrong_key_raises_authentication_error(start_gateway, stub_upstream, keys) -> None:
    base = start_gateway(inference_url=stub_upstream)
    keys.create("alice", "developer")
    with pytest.raises(openai.AuthenticationError) as info:
        client(base, "ais_" + "x" * 43).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 401
    assert "invalid API key" in str(info.value)


def test_revoked_key_stops_working_at_once(start_gateway, stub_upstream, keys) -> None:
    from services.security.db import Database
    from services.security.keys import KeyStore

    base = start_gateway(inference_url=stub_upstream)
    key = keys.create("alice", "developer")
    c = client(base, key)
    assert c.models.list().data
    db = Database(keys.db_path)
    KeyStore(db).revoke(key[:12])
    db.close()
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        c.models.list()


def test_auto_model_picks_code_model_for_code(start_gateway, stub_upstream, keys) -> None:
    base = start_gateway(inference_url=stub_upstream)
    key = keys.create("alice", "developer")
    headers = {"Authorization": f"Bearer {key}"}
    code = httpx.post(
        f"{base}/v1/chat/completions",
        headers=headers,
        json={"model": "auto", "messages": [{"role": "user", "content": "```py\ndef f(x):\n```"}]},
    )
    prose = httpx.post(
        f"{base}/v1/chat/completions",
        headers=headers,
        json={"model": "auto", "messages": [{"role": "user", "content": "a gift for my aunt?"}]},
    )
    assert (code.status_code, code.headers["X-Model"]) == (200, "code")
    assert (prose.status_code, prose.headers["X-Model"]) == (200, "chat")


def test_no_backend_configured_models_answer_and_chat_says_how(start_gateway, keys) -> None:
    base = start_gateway()
    c = client(base, keys.create("alice", "developer"))
    assert c.models.list().data == []
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 503
    assert "INFERENCE_URL" in str(info.value)


def test_upstream_down_fails_fast_with_503(start_gateway, dead_upstream, keys) -> None:
    base = start_gateway(inference_url=dead_upstream)
    c = client(base, keys.create("alice", "developer"))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 503
    assert "cannot connect" in str(info.value)
    # Not a benchmark: a guard against hanging until the read timeout (300 s).
    assert time.monotonic() - started < 30
    # The model list still answers while the backend is down.
    assert [m.id for m in c.models.list()][:3] == ["auto", "chat", "code"]


def test_unknown_model_is_404_naming_the_choices(start_gateway, keys, tmp_path) -> None:
    registry = tmp_path / "models.yaml"
    registry.write_text(
        "backends:\n  - name: local\n    url: http://127.0.0.1:9/v1\n"
        "models:\n  - name: chat\n    kind: chat\n    backends: [local]\n"
    )
    base = start_gateway(model_registry=registry)
    with pytest.raises(openai.NotFoundError, match="available: auto, chat"):
        client(base, keys.create("alice", "developer")).chat.completions.create(
            model="gpt-9", messages=[{"role": "user", "content": "hi"}]
        )


def test_fallback_to_second_backend(start_gateway, dead_upstream, stub_upstream, keys, tmp_path):
    registry = tmp_path / "models.yaml"
    registry.write_text(
        f"backends:\n  - name: primary\n    url: {dead_upstream}\n"
        f"  - name: secondary\n    url: {stub_upstream}\n"
        "models:\n  - name: chat\n    kind: chat\n    upstream_model: stub-model:latest\n"
        "    backends: [primary, secondary]\n"
    )
    base = start_gateway(model_registry=registry, upstream_retries=0)
    key = keys.create("alice", "developer")
    response = httpx.post(
        f"{base}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert response.headers["X-Backend"] == "secondary"


def test_retries_transient_upstream_5xx(start_gateway, keys) -> None:
    with serve_in_thread(create_stub_app()) as stub:
        httpx.post(f"{stub}/_stub/config", json={"fail_next": 2, "fail_status": 503})
        base = start_gateway(inference_url=f"{stub}/v1", upstream_retries=2)
        reply = client(base, keys.create("alice", "developer")).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content
        metrics = httpx.get(f"{base}/metrics").text
    assert 'llm_upstream_errors_total{backend="default",reason="status_503"} 2.0' in metrics


def test_circuit_opens_after_repeated_failures(start_gateway, dead_upstream, keys) -> None:
    base = start_gateway(
        inference_url=dead_upstream, upstream_retries=0, breaker_failure_threshold=2
    )
    c = client(base, keys.create("alice", "developer"))
    for _ in range(2):
        with pytest.raises(openai.APIStatusError):
            c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.APIStatusError, match="circuit open"):
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    metrics = httpx.get(f"{base}/metrics").text
    assert 'llm_circuit_breaker_state{backend="default"} 1.0' in metrics


def test_request_id_reaches_the_upstream_and_the_audit_log(start_gateway, keys) -> None:
    from services.security.db import Database

    with serve_in_thread(create_stub_app()) as stub:
        base = start_gateway(inference_url=f"{stub}/v1")
        key = keys.create("alice", "developer")
        response = httpx.post(
            f"{base}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}", "X-Request-ID": "trace-42"},
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )
        seen = httpx.get(f"{stub}/_stub/stats").json()["request_ids"]
    assert response.headers["X-Request-ID"] == "trace-42"
    assert seen == ["trace-42"]
    db = Database(keys.db_path)
    rows = db.query(
        "SELECT user_name, action, outcome, status FROM audit_log WHERE request_id = ?",
        ("trace-42",),
    )
    db.close()
    assert [tuple(r) for r in rows] == [("alice", "chat:create", "ok", 200)]


def test_upstream_4xx_is_passed_through_not_retried(start_gateway, keys) -> None:
    with serve_in_thread(create_stub_app(model_ids=["real-model"])) as stub:
        base = start_gateway(inference_url=f"{stub}/v1")
        key = keys.create("alice", "developer")
        response = httpx.post(
            f"{base}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "other", "messages": [{"role": "user", "content": "hi"}]},
        )
        stats = httpx.get(f"{stub}/_stub/stats").json()
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert stats["requests"]["chat_completions"] == 1


def test_malformed_chat_request_is_422_naming_the_field(start_gateway, stub_upstream, keys):
    base = start_gateway(inference_url=stub_upstream)
    key = keys.create("alice", "developer")
    response = httpx.post(
        f"{base}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "chat", "messages": []},
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "messages"


def test_forwarding_to_other_services_keeps_auth_and_request_id(start_gateway, keys) -> None:
    seen: list[dict[str, str | None]] = []
    target = FastAPI()

    @target.api_route("/tools/{name}/call", methods=["POST"])
    async def call(name: str, request: Request) -> dict[str, object]:
        seen.append(
            {
                "auth": request.headers.get("authorization"),
                "rid": request.headers.get("x-request-id"),
                "q": request.query_params.get("q"),
            }
        )
        return {"tool": name, "body": await request.json()}

    @target.get("/query-missing")
    async def missing() -> dict[str, str]:
        return {}

    with serve_in_thread(target) as mcp_url:
        base = start_gateway(mcp_url=mcp_url, rag_url=mcp_url)
        key = keys.create("alice", "developer")
        response = httpx.post(
            f"{base}/v1/tools/read_file/call?q=1",
            headers={"Authorization": f"Bearer {key}", "X-Request-ID": "fw-1"},
            json={"arguments": {"path": "a.txt"}},
        )
        # The gateway checks the key itself before it reads or forwards the body.
        refused = httpx.post(
            f"{base}/v1/tools/read_file/call",
            headers={"Authorization": "Bearer ais_whatever"},
            json={"arguments": {"path": "a.txt"}},
        )
    assert response.status_code == 200
    assert response.json() == {"tool": "read_file", "body": {"arguments": {"path": "a.txt"}}}
    assert seen == [{"auth": f"Bearer {key}", "rid": "fw-1", "q": "1"}]
    assert refused.status_code == 401
    assert response.headers["X-Request-ID"] == "fw-1"


def test_forwarding_to_a_service_that_is_down_is_503(start_gateway, dead_upstream, keys) -> None:
    base = start_gateway(rag_url=dead_upstream.removesuffix("/v1"))
    key = keys.create("bob", "viewer")
    response = httpx.post(
        f"{base}/v1/rag/query", json={"query": "x"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 503
    assert "RAG service is not reachable" in response.json()["error"]["message"]


def test_identity_headers_are_not_authentication(start_gateway, stub_upstream, keys) -> None:
    # The predecessor trusted whatever X-User-ID the caller sent.
    base = start_gateway(inference_url=stub_upstream)
    keys.create("admin", "admin")
    response = httpx.get(
        f"{base}/v1/models", headers={"X-User-ID": "admin", "X-Role": "admin", "X-API-Key": "x"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
