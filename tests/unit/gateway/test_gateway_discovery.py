"""Model discovery (TTL, forget, errors) and the token counting of upstream ``usage``."""

from __future__ import annotations

import itertools
import json

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.core.errors import ApiError
from services.gateway.discovery import ModelDiscovery
from services.gateway.registry import load_registry
from services.gateway.upstream import LlmMetrics, UpstreamPool, _StreamUsage

URL = "http://upstream.test/v1"
# Model names as servers spell them: Ollama tags, Hugging Face paths, GGUF files.
model_names = st.from_regex(
    r"[A-Za-z0-9][A-Za-z0-9._/-]{0,30}(:[A-Za-z0-9._-]{1,10})?", fullmatch=True
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Listing:
    """A GET /models double: answers ``ids`` or raises ``error``; counts its calls."""

    def __init__(self, ids: list[str] | None = None, error: Exception | None = None) -> None:
        self.ids = ids or []
        self.error = error
        self.calls = 0

    async def __call__(self) -> list[str]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return list(self.ids)


def discovery(listing: Listing, clock: FakeClock | None = None, ttl: float = 60.0):
    return ModelDiscovery(URL, listing, ["chat", "code"], ttl=ttl, clock=clock or FakeClock())


async def test_first_listed_model_is_used() -> None:
    listing = Listing(["llama3.2:1b", "qwen2.5-coder:7b"])
    found = discovery(listing)
    assert await found.upstream_name("chat") == "llama3.2:1b"
    assert await found.upstream_name("code") == "llama3.2:1b"
    assert listing.calls == 1


async def test_only_unpinned_aliases_are_discovered() -> None:
    found = ModelDiscovery(URL, Listing(["a"]), ["chat"])
    assert found.discovers("chat")
    assert not found.discovers("code")
    assert not found.discovers("llama3.2:1b")


async def test_list_is_reused_until_the_ttl_then_fetched_again() -> None:
    clock = FakeClock()
    listing = Listing(["a:1"])
    found = discovery(listing, clock, ttl=60)
    await found.upstream_name("chat")
    clock.now = 59.9
    listing.ids = ["b:2"]
    assert await found.upstream_name("chat") == "a:1"
    clock.now = 60.0
    assert await found.upstream_name("chat") == "b:2"
    assert listing.calls == 2


async def test_forget_makes_the_next_lookup_ask_again() -> None:
    listing = Listing(["a:1"])
    found = discovery(listing)
    await found.upstream_name("chat")
    listing.ids = ["b:2"]
    found.forget()
    assert await found.upstream_name("chat") == "b:2"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (httpx.ConnectError("refused"), "cannot connect: ConnectError"),
        (httpx.ConnectTimeout("slow"), "cannot connect: ConnectTimeout"),
        (httpx.ReadTimeout("slow"), "ReadTimeout: slow"),
        (
            httpx.HTTPStatusError(
                "x",
                request=httpx.Request("GET", URL),
                response=httpx.Response(401, request=httpx.Request("GET", URL)),
            ),
            "GET /models answered 401",
        ),
        (ValueError("no 'data' list"), "did not answer an OpenAI model list: no 'data' list"),
    ],
)
async def test_failure_is_a_503_that_says_what_to_do(error: Exception, reason: str) -> None:
    found = discovery(Listing(error=error))
    with pytest.raises(ApiError) as info:
        await found.upstream_name("chat")
    assert info.value.status == 503
    assert info.value.code == "model_discovery_failed"
    assert info.value.headers == {"Retry-After": "5"}
    assert reason in info.value.message
    assert URL in info.value.message
    assert "INFERENCE_CHAT_MODEL and INFERENCE_CODE_MODEL" in info.value.message


async def test_a_failure_is_not_cached() -> None:
    listing = Listing(error=httpx.ConnectError("down"))
    found = discovery(listing)
    with pytest.raises(ApiError):
        await found.listed()
    listing.error = None
    listing.ids = ["up:1"]
    assert await found.upstream_name("chat") == "up:1"


async def test_empty_list_names_the_variable_of_the_alias() -> None:
    found = discovery(Listing([]))
    with pytest.raises(ApiError, match="INFERENCE_CODE_MODEL") as info:
        await found.upstream_name("code")
    assert info.value.status == 503
    assert "lists no models" in info.value.message


@given(names=st.lists(model_names, min_size=1, max_size=5, unique=True))
async def test_any_listed_names_map_to_the_first_and_resolve_as_passthrough(
    names: list[str],
) -> None:
    found = discovery(Listing(names))
    assert await found.upstream_name("chat") == names[0]
    registry = load_registry(None, URL)
    for name in names:
        if name in ("chat", "code", "auto"):
            continue
        resolved = registry.resolve(name)
        assert resolved is not None
        assert (resolved.upstream_model, resolved.passthrough) == (name, True)


def test_pinned_names_become_the_upstream_models() -> None:
    registry = load_registry(None, URL, chat_model="llama3.2:1b", code_model="coder:7b")
    chat, code = registry.resolve("chat"), registry.resolve("code")
    assert chat is not None
    assert code is not None
    assert (chat.upstream_model, code.upstream_model) == ("llama3.2:1b", "coder:7b")
    unpinned = load_registry(None, URL).resolve("chat")
    assert unpinned is not None
    assert unpinned.upstream_model == "chat"


# --- usage -> llm_tokens_total ----------------------------------------------------------


def pool() -> tuple[UpstreamPool, CollectorRegistry]:
    registry = CollectorRegistry()
    models = load_registry(None, URL)
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(500)))
    return UpstreamPool(models, client, LlmMetrics(registry)), registry


def tokens(registry: CollectorRegistry, kind: str) -> float:
    value = registry.get_sample_value(
        "llm_tokens_total", {"model": "chat", "backend": "default", "kind": kind}
    )
    return value or 0.0


@pytest.mark.parametrize(
    "usage",
    [None, [], "12", {"prompt_tokens": "3"}, {"prompt_tokens": True}, {"prompt_tokens": -4}],
)
def test_malformed_usage_counts_nothing(usage: object) -> None:
    upstream, registry = pool()
    upstream.record_usage("chat", "default", usage)
    upstream.record_body_usage("chat", "default", b"not json")
    upstream.record_body_usage("chat", "default", b"[1]")
    assert tokens(registry, "prompt") == tokens(registry, "completion") == 0


def test_body_usage_is_counted_by_kind() -> None:
    upstream, registry = pool()
    body = {"usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
    upstream.record_body_usage("chat", "default", json.dumps(body).encode())
    assert (tokens(registry, "prompt"), tokens(registry, "completion")) == (7, 3)


def sse(*events: object) -> bytes:
    return b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events
    )


STREAM = sse(
    {"choices": [{"delta": {"content": "a"}}]},
    {"choices": [{"delta": {"content": "b"}}], "usage": None},
    {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}},
    "[DONE]",
)


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_stream_usage_is_the_last_one_however_the_stream_is_split(cuts: list[int]) -> None:
    found = _StreamUsage()
    bounds = [0, *sorted(cuts), len(STREAM)]
    for start, end in itertools.pairwise(bounds):
        found.feed(STREAM[start:end])
    found.feed(b"\n")
    assert found.last == {"prompt_tokens": 5, "completion_tokens": 9}


def test_stream_without_usage_finds_none() -> None:
    found = _StreamUsage()
    found.feed(sse({"choices": [{"delta": {"content": "usage"}}]}, "[DONE]"))
    found.feed(b'data: {"usage": broken\n\n')
    assert found.last is None


# --- settings ---------------------------------------------------------------------------


def test_inference_settings_come_from_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.gateway.settings import GatewaySettings

    monkeypatch.setenv("INFERENCE_CHAT_MODEL", "llama3.2:1b")
    monkeypatch.setenv("INFERENCE_CODE_MODEL", " ")  # compose's ${VAR:-}: unset
    monkeypatch.setenv("INFERENCE_API_KEY", "sk-from-env-42")
    monkeypatch.setenv("INFERENCE_MODELS_TTL_SECONDS", "5")
    settings = GatewaySettings()
    assert settings.inference_chat_model == "llama3.2:1b"
    assert settings.inference_code_model is None
    assert settings.inference_api_key is not None
    assert settings.inference_api_key.get_secret_value() == "sk-from-env-42"
    assert settings.inference_models_ttl_seconds == 5
    assert "sk-from-env-42" not in repr(settings)
    monkeypatch.setenv("INFERENCE_MODELS_TTL_SECONDS", "0")
    with pytest.raises(ValueError, match="INFERENCE_MODELS_TTL_SECONDS"):
        GatewaySettings()
