"""The gateway's inference routes in-process, against the inference stub (test double).

The stub behaves like Ollama/vLLM: it serves ``stub-model:latest`` and answers 404 for
any other name, so a gateway that sent its own alias upstream fails these tests.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from services.core.logging import JsonFormatter
from services.gateway.registry import Backend, ModelEntry, ModelRegistry
from services.gateway.selection import ModelKind
from tests.stubs.inference import create_stub_app
from tests.unit.gateway.conftest import UPSTREAM, Gateway, MakeGateway

SERVED = "stub-model:latest"
HOST = "upstream.test"


def stub(**kwargs):
    return create_stub_app(**kwargs)


def stub_stats(gateway: Gateway) -> dict:
    return gateway.router.transports[HOST].app.state.stub.stats()  # type: ignore[attr-defined]


def revoke(gateway: Gateway, sql: str, params: tuple[str, str]) -> None:
    with gateway.db.transaction() as conn:
        conn.execute(sql, params)


def sent_models(gateway: Gateway, path: str, host: str | None = None) -> list[str]:
    return [
        json.loads(r.content)["model"]
        for r in gateway.upstream_requests(path)
        if host is None or r.url.host == host
    ]


# --- alias mapping and discovery ----------------------------------------------------------


async def test_chat_alias_is_mapped_to_the_first_listed_model(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub(model_ids=[SERVED, "second:1b"])}, inference_url=UPSTREAM)
    response = await gw.chat("chat")
    assert response.status_code == 200
    assert response.headers["X-Model"] == "chat"
    assert response.json()["model"] == SERVED
    assert sent_models(gw, "/chat/completions") == [SERVED]


async def test_auto_picks_code_then_maps_to_the_upstream_name(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    code = await gw.chat("auto", "```py\ndef f(x):\n    return x\n```")
    prose = await gw.chat("auto", "what should I cook tonight?")
    assert (code.status_code, code.headers["X-Model"]) == (200, "code")
    assert (prose.status_code, prose.headers["X-Model"]) == (200, "chat")
    assert sent_models(gw, "/chat/completions") == [SERVED, SERVED]


async def test_pinned_names_win_and_skip_discovery(make_gateway: MakeGateway):
    upstream = stub(model_ids=["first:1b", "llama3.2:1b", "qwen2.5-coder:7b"])
    gw = await make_gateway(
        {HOST: upstream},
        inference_url=UPSTREAM,
        inference_chat_model="llama3.2:1b",
        inference_code_model="qwen2.5-coder:7b",
    )
    assert (await gw.chat("chat")).status_code == 200
    assert (await gw.chat("code")).status_code == 200
    assert sent_models(gw, "/chat/completions") == ["llama3.2:1b", "qwen2.5-coder:7b"]
    assert gw.upstream_requests("/models") == []


async def test_one_pinned_alias_the_other_discovered(make_gateway: MakeGateway):
    gw = await make_gateway(
        {HOST: stub(model_ids=["first:1b", "coder:7b"])},
        inference_url=UPSTREAM,
        inference_code_model="coder:7b",
    )
    await gw.chat("chat")
    await gw.chat("code")
    assert sent_models(gw, "/chat/completions") == ["first:1b", "coder:7b"]


async def test_upstream_names_with_colons_pass_through_unchanged(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub(model_ids=[SERVED, "llama3.2:1b"])}, inference_url=UPSTREAM)
    response = await gw.chat("llama3.2:1b")
    assert response.status_code == 200
    assert response.headers["X-Model"] == "llama3.2:1b"
    assert sent_models(gw, "/chat/completions") == ["llama3.2:1b"]
    # The metric label is bounded: the name the client sent is not a label value.
    assert await gw.sample("llm_requests_total", model="<passthrough>", status="200") == 1
    assert await gw.sample("llm_requests_total", model="llama3.2:1b") == 0


async def test_unknown_passthrough_name_gets_the_upstreams_404(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    response = await gw.chat("gpt-9")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert "gpt-9" in error["message"]
    assert len(gw.upstream_requests("/chat/completions")) == 1  # a 4xx is not retried


async def test_discovery_is_cached_within_the_ttl(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    for _ in range(3):
        assert (await gw.chat()).status_code == 200
    assert len(gw.upstream_requests("/models")) == 1


async def test_model_replaced_upstream_is_rediscovered_on_404(make_gateway: MakeGateway):
    upstream = stub(model_ids=["old:1b"])
    gw = await make_gateway({HOST: upstream}, inference_url=UPSTREAM)
    assert (await gw.chat()).status_code == 200
    upstream.state.stub.config.model_ids = ["new:2b"]  # unloaded and replaced
    response = await gw.chat()
    assert response.status_code == 200
    assert response.json()["model"] == "new:2b"
    assert sent_models(gw, "/chat/completions") == ["old:1b", "old:1b", "new:2b"]
    assert await gw.sample("llm_requests_total", model="chat", status="404") == 0
    assert await gw.sample("llm_requests_total", model="chat", status="200") == 2


async def test_a_404_for_a_name_still_listed_is_passed_on(make_gateway: MakeGateway):
    # Rediscovery finds the same name: nothing to retry with, so the 404 stands.
    gw = await make_gateway({HOST: stub(model_ids=["m:1"])}, inference_url=UPSTREAM)
    gw.router.transports[HOST].app.state.stub.config.fail_next = 1  # type: ignore[attr-defined]
    gw.router.transports[HOST].app.state.stub.config.fail_status = 404  # type: ignore[attr-defined]
    response = await gw.chat()
    assert response.status_code == 404
    assert len(gw.upstream_requests("/models")) == 2


async def test_ttl_expiry_rediscovers(make_gateway: MakeGateway):
    gw = await make_gateway(
        {HOST: stub()}, inference_url=UPSTREAM, inference_models_ttl_seconds=1e-9
    )
    await gw.chat()
    await gw.chat()
    assert len(gw.upstream_requests("/models")) == 2


async def test_discovery_failure_is_503_saying_what_to_do(make_gateway: MakeGateway):
    gw = await make_gateway({}, inference_url=UPSTREAM)  # nothing listens
    response = await gw.chat()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["code"] == "model_discovery_failed"
    assert "cannot connect" in error["message"]
    assert "INFERENCE_CHAT_MODEL" in error["message"]
    assert await gw.sample("llm_requests_total", model="chat", backend="none", status="503") == 1
    assert await gw.sample("llm_upstream_errors_total", backend="default", reason="connect") == 1
    rows = gw.audit_rows()
    assert rows[-1][1:5] == ("chat:create", "chat", "unavailable", 503)


async def test_upstream_listing_no_models_is_503_saying_what_to_do(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub(model_ids=[])}, inference_url=UPSTREAM)
    response = await gw.chat("code")
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert "lists no models" in message
    assert "INFERENCE_CODE_MODEL" in message


async def test_discovery_answer_that_is_not_a_model_list_is_503(make_gateway: MakeGateway):
    from fastapi import FastAPI

    odd = FastAPI()

    @odd.get("/v1/models")
    async def models() -> list[int]:
        return [1, 2]

    gw = await make_gateway({HOST: odd}, inference_url=UPSTREAM)
    response = await gw.chat()
    assert response.status_code == 503
    assert "did not answer an OpenAI model list" in response.json()["error"]["message"]


async def test_models_list_shows_aliases_and_upstream_names(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub(model_ids=[SERVED, "b:2"])}, inference_url=UPSTREAM)
    listed = (await gw.client.get("/v1/models", headers=gw.auth("viewer"))).json()
    assert [m["id"] for m in listed["data"]] == ["auto", "chat", "code", SERVED, "b:2"]


# --- registry mode ------------------------------------------------------------------------


def two_backends(upstream_model: str | None = SERVED) -> ModelRegistry:
    return ModelRegistry(
        backends=[
            Backend(name="primary", url="http://down.test/v1"),
            Backend(name="secondary", url=f"http://{HOST}/v1", api_key_env="GW_TEST_KEY"),
        ],
        models=[
            ModelEntry(
                name="chat",
                kind=ModelKind.CHAT,
                upstream_model=upstream_model,
                backends=["primary", "secondary"],
            )
        ],
    )


async def test_registry_upstream_model_is_sent(make_gateway: MakeGateway, monkeypatch):
    monkeypatch.setenv("GW_TEST_KEY", "sk-registry-backend-key")
    upstream = stub(api_key="sk-registry-backend-key")
    gw = await make_gateway({HOST: upstream}, model_registry=two_backends())
    response = await gw.chat()
    assert response.status_code == 200
    assert response.headers["X-Backend"] == "secondary"
    assert sent_models(gw, "/chat/completions", HOST) == [SERVED]
    assert set(sent_models(gw, "/chat/completions", "down.test")) == {SERVED}
    assert gw.upstream_requests("/models") == []  # registry mode never discovers


async def test_registry_without_upstream_model_sends_the_alias(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, model_registry=two_backends(None))
    response = await gw.chat()
    assert response.status_code == 404  # what Ollama answers; upstream_model fixes it
    assert sent_models(gw, "/chat/completions")[-1] == "chat"


# --- upstream API key ---------------------------------------------------------------------


async def test_inference_api_key_is_sent_as_bearer(make_gateway: MakeGateway):
    gw = await make_gateway(
        {HOST: stub(api_key="sk-upstream-secret")},
        inference_url=UPSTREAM,
        inference_api_key="sk-upstream-secret",
    )
    assert (await gw.chat()).status_code == 200
    assert (await gw.embed()).status_code == 200
    assert (await gw.complete()).status_code == 200
    for request in gw.router.sent:
        assert request.headers["authorization"] == "Bearer sk-upstream-secret"
    # The caller's own key never travels upstream.
    assert all(gw.keys["developer"] not in str(r.headers) for r in gw.router.sent)


async def test_missing_upstream_key_is_a_clear_error(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub(api_key="sk-upstream-secret")}, inference_url=UPSTREAM)
    response = await gw.chat()
    assert response.status_code == 503
    assert "GET /models answered 401" in response.json()["error"]["message"]
    ready = (await gw.client.get("/ready")).json()
    assert "INFERENCE_API_KEY" in ready["checks"]["backend:default"]


async def test_upstream_key_appears_in_no_log_line(make_gateway: MakeGateway):
    secret = "upstream-key-7f3a9c"  # not shaped like any pattern the redactor knows
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("gateway"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        gw = await make_gateway(
            {HOST: stub(api_key=secret)}, inference_url=UPSTREAM, inference_api_key=secret
        )
        assert (await gw.chat()).status_code == 200
        gw.router.transports[HOST].app.state.stub.config.model_ids = ["x:1"]  # type: ignore
        await gw.chat()  # 404, rediscovery: warning logged
        broken = await make_gateway({}, inference_url=UPSTREAM, inference_api_key=secret)
        await broken.chat()
        await broken.client.get("/ready")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = stream.getvalue().splitlines()
    assert any("now mapped" in line for line in lines)  # the logging did run
    assert not [line for line in lines if secret in line]


# --- the new routes -----------------------------------------------------------------------


async def test_embeddings_route(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    response = await gw.embed("chat", ["one two", "three"])
    assert response.status_code == 200
    assert response.headers["X-Model"] == "chat"
    assert len(response.json()["data"]) == 2
    assert sent_models(gw, "/embeddings") == [SERVED]
    assert await gw.sample("llm_tokens_total", model="chat", kind="prompt") == 3
    assert await gw.sample("llm_tokens_total", model="chat", kind="completion") == 0
    row = gw.audit_rows()[-1]
    assert row[:5] == ("developer-user", "embeddings:create", "chat", "ok", 200)
    assert json.loads(row[5]) == {"api": "embeddings", "backend": "default"}


async def test_embeddings_refuse_auto_with_400(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    response = await gw.embed("auto")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("model_auto_not_supported", "model")
    assert gw.upstream_requests("/embeddings") == []


async def test_embeddings_passthrough_name(make_gateway: MakeGateway):
    gw = await make_gateway(
        {HOST: stub(model_ids=[SERVED, "nomic-embed:v1"])}, inference_url=UPSTREAM
    )
    response = await gw.embed("nomic-embed:v1")
    assert response.status_code == 200
    assert sent_models(gw, "/embeddings") == ["nomic-embed:v1"]


async def test_completions_route(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    response = await gw.complete("chat", "say hi", max_tokens=5)
    assert response.status_code == 200
    assert response.json()["choices"][0]["text"] == "stub reply to: say hi"
    sent = json.loads(gw.upstream_requests("/completions")[-1].content)
    assert sent["model"] == SERVED
    assert sent["max_tokens"] == 5  # other fields travel untouched
    assert await gw.sample("llm_tokens_total", model="chat", kind="prompt") == 2
    assert await gw.sample("llm_tokens_total", model="chat", kind="completion") == 5
    row = gw.audit_rows()[-1]
    assert row[1:5] == ("chat:create", "chat", "ok", 200)
    assert json.loads(row[5])["api"] == "completions"


async def test_completions_auto_uses_the_prompt(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    code = await gw.complete("auto", "import os\ndef main():\n")
    prose = await gw.complete("auto", ["a poem about", "the sea"])
    tokens = await gw.complete("auto", [101, 102])
    assert [r.headers["X-Model"] for r in (code, prose, tokens)] == ["code", "chat", "chat"]


async def test_completions_stream_with_usage(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    response = await gw.complete(
        "code", "one two", stream=True, stream_options={"include_usage": True}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    text = "".join(c["choices"][0]["text"] for c in map(json.loads, events[:-1]) if c["choices"])
    assert text == "stub reply to: one two"
    assert await gw.sample("llm_tokens_total", model="code", kind="prompt") == 2
    assert await gw.sample("llm_tokens_total", model="code", kind="completion") == 5
    assert await gw.sample("llm_requests_total", model="code", status="200") == 1


async def test_stream_without_usage_counts_no_tokens(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    response = await gw.chat(stream=True)
    assert response.status_code == 200
    assert await gw.sample("llm_tokens_total") == 0


async def test_chat_tokens_non_streaming_and_streaming(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    await gw.chat(text="one two three")
    await gw.chat(text="four", stream=True, stream_options={"include_usage": True})
    assert await gw.sample("llm_tokens_total", model="chat", backend="default", kind="prompt") == 4
    # "stub reply to: one two three" + "stub reply to: four"
    assert await gw.sample("llm_tokens_total", model="chat", kind="completion") == 6 + 4


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", {"model": "chat"}, "prompt"),
        ("/v1/completions", {"model": "chat", "prompt": {"a": 1}}, "prompt"),
        ("/v1/embeddings", {"model": "chat"}, "input"),
        ("/v1/embeddings", {"input": "x"}, "model"),
    ],
)
async def test_new_routes_refuse_malformed_bodies_with_422(
    make_gateway: MakeGateway, path: str, body: dict, param: str
):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    response = await gw.client.post(path, json=body, headers=gw.auth())
    assert response.status_code == 422
    # A union type adds the member tried: "prompt.str".
    assert response.json()["error"]["param"].split(".")[0] == param
    assert gw.router.sent == []


async def test_new_routes_without_backend_say_how_to_configure(make_gateway: MakeGateway):
    gw = await make_gateway()
    for response in (await gw.embed(), await gw.complete()):
        assert response.status_code == 503
        assert "INFERENCE_URL" in response.json()["error"]["message"]


# --- RBAC ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/completions"])
async def test_new_routes_need_a_key(make_gateway: MakeGateway, path: str):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    response = await gw.client.post(path, json={"model": "chat", "input": "x", "prompt": "x"})
    assert response.status_code == 401
    assert gw.router.sent == []


async def test_embeddings_refused_without_the_permission(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    revoke(
        gw,
        "DELETE FROM role_permissions WHERE role_id = (SELECT id FROM roles WHERE name = ?)"
        " AND permission_id = (SELECT id FROM permissions WHERE name = ?)",
        ("developer", "embeddings:create"),
    )
    response = await gw.embed()
    assert response.status_code == 403
    assert "embeddings:create" in response.json()["error"]["message"]
    assert (await gw.complete()).status_code == 200  # chat:create still granted
    assert gw.upstream_requests("/embeddings") == []
    assert ("developer-user", "embeddings:create", None, "denied", 403) in [
        r[:5] for r in gw.audit_rows()
    ]


async def test_completions_follow_the_chat_permission(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    revoke(
        gw,
        "DELETE FROM role_permissions WHERE role_id = (SELECT id FROM roles WHERE name = ?)"
        " AND permission_id = (SELECT id FROM permissions WHERE name = ?)",
        ("developer", "chat:create"),
    )
    assert (await gw.complete()).status_code == 403
    assert (await gw.chat()).status_code == 403
    assert (await gw.embed()).status_code == 200


async def test_every_role_may_embed(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    for role in ("viewer", "developer", "admin"):
        response = await gw.client.post(
            "/v1/embeddings", json={"model": "chat", "input": "x"}, headers=gw.auth(role)
        )
        assert response.status_code == 200, role


# --- retries, fallback, breaker on the new routes -----------------------------------------


@pytest.mark.parametrize("call", ["embed", "complete"])
async def test_new_routes_retry_transient_5xx(make_gateway: MakeGateway, call: str):
    upstream = stub(model_ids=[SERVED])
    gw = await make_gateway({HOST: upstream}, inference_url=UPSTREAM, upstream_retries=2)
    upstream.state.stub.config.fail_next = 2
    upstream.state.stub.config.fail_status = 502
    response = await getattr(gw, call)()
    assert response.status_code == 200
    assert await gw.sample("llm_upstream_errors_total", reason="status_502") == 2


@pytest.mark.parametrize("call", ["embed", "complete"])
async def test_new_routes_fall_back_to_the_second_backend(make_gateway: MakeGateway, call: str):
    gw = await make_gateway({HOST: stub()}, model_registry=two_backends(), upstream_retries=0)
    response = await getattr(gw, call)()
    assert response.status_code == 200
    assert response.headers["X-Backend"] == "secondary"
    assert await gw.sample("llm_upstream_errors_total", backend="primary", reason="connect") == 1


@pytest.mark.parametrize("call", ["embed", "complete"])
async def test_new_routes_open_the_circuit(make_gateway: MakeGateway, call: str):
    gw = await make_gateway(
        {},
        model_registry=two_backends(),
        upstream_retries=0,
        breaker_failure_threshold=2,
    )
    for _ in range(2):
        response = await getattr(gw, call)()
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "upstream_unavailable"
    sent = len(gw.router.sent)
    refused = await getattr(gw, call)()
    assert refused.status_code == 503
    assert "circuit open" in refused.json()["error"]["message"]
    assert len(gw.router.sent) == sent  # no network call while open
    assert await gw.sample("llm_circuit_breaker_state", backend="primary") == 1


async def test_dead_inference_url_opens_the_circuit_through_discovery(make_gateway: MakeGateway):
    gw = await make_gateway(
        {}, inference_url=UPSTREAM, upstream_retries=0, breaker_failure_threshold=2
    )
    for _ in range(2):
        assert (await gw.chat()).status_code == 503
    sent = len(gw.router.sent)
    refused = await gw.complete()
    assert refused.status_code == 503
    assert "circuit open" in refused.json()["error"]["message"]
    assert len(gw.router.sent) == sent


# --- /ready -------------------------------------------------------------------------------


async def test_ready_lists_a_down_backend_as_degraded_not_503(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, model_registry=two_backends())
    response = await gw.client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["backend:primary"]
    assert "not reachable at http://down.test/v1" in body["checks"]["backend:primary"]
    assert body["checks"]["backend:secondary"] == "ok"
    assert body["checks"]["security_database"] == "ok"
    assert "not_ready" not in body


async def test_ready_when_every_backend_answers(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    response = await gw.client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "service": "gateway",
        "checks": {"security_database": "ok", "backend:default": "ok"},
    }


async def test_ready_names_an_open_circuit(make_gateway: MakeGateway):
    gw = await make_gateway(
        {HOST: stub()}, inference_url=UPSTREAM, upstream_retries=0, breaker_failure_threshold=1
    )
    gw.router.transports[HOST].app.state.stub.config.fail_next = 1  # type: ignore
    assert (await gw.chat()).status_code == 503
    body = (await gw.client.get("/ready")).json()
    assert body["status"] == "degraded"
    assert "circuit is open" in body["checks"]["backend:default"]


async def test_ready_is_503_when_the_database_fails_even_with_backends_up(
    make_gateway: MakeGateway,
):
    gw = await make_gateway({HOST: stub()}, inference_url=UPSTREAM)
    with gw.db.transaction() as conn:
        conn.execute("DROP TABLE schema_migrations")
    response = await gw.client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["not_ready"] == ["security_database"]
    assert body["checks"]["backend:default"] == "ok"


async def test_ready_without_backends_is_ready(make_gateway: MakeGateway):
    gw = await make_gateway()
    response = await gw.client.get("/ready")
    assert (response.status_code, response.json()["status"]) == (200, "ready")


async def test_backend_answering_5xx_to_the_probe_is_degraded(make_gateway: MakeGateway):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    sick = FastAPI()

    @sick.get("/v1/models")
    async def models() -> JSONResponse:
        return JSONResponse({}, status_code=500)

    gw = await make_gateway({HOST: sick}, inference_url=UPSTREAM)
    body = (await gw.client.get("/ready")).json()
    assert body["checks"]["backend:default"] == f"{UPSTREAM} answered 500 to GET /models"


async def test_upstream_refusing_the_gateways_key_is_502_not_401(make_gateway: MakeGateway):
    # Pinned names: no discovery, so the refusal comes from the request itself.
    gw = await make_gateway(
        {HOST: stub(api_key="sk-right")},
        inference_url=UPSTREAM,
        inference_chat_model=SERVED,
        inference_code_model=SERVED,
        inference_api_key="sk-wrong",
    )
    for response in (await gw.chat(), await gw.complete(), await gw.embed()):
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["code"] == "upstream_auth_failed"
        assert "INFERENCE_API_KEY" in error["message"]
    assert await gw.sample("llm_requests_total", model="chat", status="401") == 3
    assert gw.audit_rows()[-1][3:5] == ("upstream_error", 502)
