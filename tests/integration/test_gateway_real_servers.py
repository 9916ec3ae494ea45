"""The gateway in front of a server that behaves like Ollama/vLLM (the stub, on a real
socket), driven by the official ``openai`` client: names the server does not list are
404 there, so every alias must be mapped to a name it serves."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.stubs.inference import create_stub_app
from tests.support.live import serve_in_thread

SERVED = "stub-model:latest"


def client(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=10)


def hi(text: str = "hi") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def gateway(start_gateway, stub_upstream, keys) -> openai.OpenAI:
    base = start_gateway(inference_url=stub_upstream)
    return client(base, keys.create("alice", "developer"))


def test_models_list_has_aliases_and_the_servers_names(gateway: openai.OpenAI) -> None:
    assert [m.id for m in gateway.models.list()] == ["auto", "chat", "code", SERVED]


@pytest.mark.parametrize("model", ["chat", "code", "auto", SERVED])
def test_chat_reaches_the_served_model(gateway: openai.OpenAI, model: str) -> None:
    reply = gateway.chat.completions.create(model=model, messages=hi("hello there"))
    assert reply.model == SERVED  # the stub repeats the name it was sent
    assert reply.choices[0].message.content == "stub reply to: hello there"


def test_streaming_chat_with_usage_counts_tokens(start_gateway, stub_upstream, keys) -> None:
    base = start_gateway(inference_url=stub_upstream)
    c = client(base, keys.create("alice", "developer"))
    stream = c.chat.completions.create(
        model="chat",
        messages=hi("one two"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    metrics = httpx.get(f"{base}/metrics").text
    assert 'llm_tokens_total{backend="default",kind="completion",model="chat"} 5.0' in metrics
    assert 'llm_tokens_total{backend="default",kind="prompt",model="chat"} 2.0' in metrics


def test_embeddings(gateway: openai.OpenAI) -> None:
    # The client asks for base64 and decodes it, as it does against OpenAI.
    result = gateway.embeddings.create(model="chat", input=["first text", "second"])
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens == 3
    floats = gateway.embeddings.create(model=SERVED, input="first text", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-6)


def test_legacy_completions(gateway: openai.OpenAI) -> None:
    result = gateway.completions.create(model="chat", prompt="say hi", max_tokens=8)
    assert result.choices[0].text == "stub reply to: say hi"
    assert result.model == SERVED
    assert result.usage is not None
    assert result.usage.total_tokens == 7


def test_legacy_completions_stream(gateway: openai.OpenAI) -> None:
    stream = gateway.completions.create(model="auto", prompt="count one two", stream=True)
    chunks = list(stream)
    assert len(chunks) > 2
    assert "".join(c.choices[0].text for c in chunks if c.choices) == (
        "stub reply to: count one two"
    )
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_bad_key_is_an_authentication_error(start_gateway, stub_upstream, keys) -> None:
    base = start_gateway(inference_url=stub_upstream)
    keys.create("alice", "developer")
    bad = client(base, "ais_" + "y" * 43)
    with pytest.raises(openai.AuthenticationError) as embedding:
        bad.embeddings.create(model="chat", input="x")
    with pytest.raises(openai.AuthenticationError) as completion:
        bad.completions.create(model="chat", prompt="x")
    assert embedding.value.status_code == completion.value.status_code == 401


def test_unknown_model_is_the_servers_404(gateway: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        gateway.chat.completions.create(model="llama-not-pulled:7b", messages=hi())
    assert "llama-not-pulled:7b" in str(info.value)
    assert info.value.code == "model_not_found"


def test_upstream_down_is_503_saying_what_to_do(start_gateway, dead_upstream, keys) -> None:
    base = start_gateway(inference_url=dead_upstream, upstream_retries=0)
    c = client(base, keys.create("alice", "developer"))
    for call in (
        lambda: c.chat.completions.create(model="auto", messages=hi()),
        lambda: c.embeddings.create(model="chat", input="x"),
        lambda: c.completions.create(model="code", prompt="x"),
    ):
        with pytest.raises(openai.InternalServerError) as info:
            call()
        assert info.value.status_code == 503
        message = str(info.value)
        assert "cannot connect" in message
        assert "INFERENCE_CHAT_MODEL" in message
    ready = httpx.get(f"{base}/ready")
    assert ready.status_code == 200
    assert ready.json()["degraded"] == ["backend:default"]


def test_pinned_names_and_upstream_key(start_gateway, keys) -> None:
    app = create_stub_app(model_ids=["a:1b", "llama3.2:1b", "coder:7b"], api_key="sk-up-123")
    with serve_in_thread(app) as stub:
        base = start_gateway(
            inference_url=f"{stub}/v1",
            inference_chat_model="llama3.2:1b",
            inference_code_model="coder:7b",
            inference_api_key="sk-up-123",
        )
        c = client(base, keys.create("alice", "developer"))
        assert c.chat.completions.create(model="chat", messages=hi()).model == "llama3.2:1b"
        assert c.completions.create(model="code", prompt="def f():").model == "coder:7b"
        assert httpx.get(f"{base}/ready").json()["status"] == "ready"


def test_without_the_upstream_key_the_error_names_it(start_gateway, keys) -> None:
    with serve_in_thread(create_stub_app(api_key="sk-up-123")) as stub:
        base = start_gateway(inference_url=f"{stub}/v1")
        c = client(base, keys.create("alice", "developer"))
        with pytest.raises(openai.InternalServerError, match="answered 401"):
            c.chat.completions.create(model="chat", messages=hi())
        ready = httpx.get(f"{base}/ready").json()
    assert ready["status"] == "degraded"
    assert "INFERENCE_API_KEY" in ready["checks"]["backend:default"]


def test_a_replaced_model_is_found_again(start_gateway, keys) -> None:
    with serve_in_thread(create_stub_app(model_ids=["old:1b"])) as stub:
        base = start_gateway(inference_url=f"{stub}/v1")
        c = client(base, keys.create("alice", "developer"))
        assert c.chat.completions.create(model="chat", messages=hi()).model == "old:1b"
        httpx.post(f"{stub}/_stub/config", json={"model_ids": ["new:3b"]})
        assert c.chat.completions.create(model="chat", messages=hi()).model == "new:3b"
        assert c.embeddings.create(model="chat", input="x").model == "new:3b"
