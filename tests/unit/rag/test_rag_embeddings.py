"""Embedding backends: hash (deterministic), openai-compatible (batched), the factory.

The multilingual model itself runs in tests/integration/rag/test_rag_multilingual.py
(loading it takes seconds: not a unit test)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from services.core.http import make_async_client
from services.rag.embeddings import (
    Embedder,
    EmbeddingError,
    HashEmbedder,
    MultilingualEmbedder,
    OpenAIEmbedder,
    build_embedder,
)
from services.rag.embeddings.hashing import hash_embedding
from services.rag.settings import RagSettings

EMBED_URL = "http://embed.test/v1"


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@given(st.text(max_size=200))
def test_hash_vectors_are_unit_length_and_deterministic(text: str) -> None:
    vector = hash_embedding(text, 64)
    assert len(vector) == 64
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-9)
    assert vector == hash_embedding(text, 64)


def test_hash_similarity_follows_shared_words_in_both_languages() -> None:
    def sim(a: str, b: str) -> float:
        return cosine(hash_embedding(a, 1024), hash_embedding(b, 1024))

    assert sim("run the tests", "How do I run tests?") > sim("run the tests", "bake bread")
    assert sim("문서를 색인합니다", "문서는 어디에") > sim("문서를 색인합니다", "김치 양념")
    assert sim("how do I", "how do I") == pytest.approx(1.0)  # stop words only: not zero


async def test_hash_embedder_implements_the_protocol() -> None:
    embedder = HashEmbedder(32)
    assert isinstance(embedder, Embedder)
    assert embedder.identity == "hash-v1/32"
    assert await embedder.dimension() == 32
    vectors = await embedder.embed(["a", "b"])
    assert len(vectors) == 2
    await embedder.aclose()


@respx.mock
async def test_openai_backend_batches_and_keeps_input_order() -> None:
    calls: list[list[str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body["input"])
        assert body["model"] == "nomic"
        assert request.headers["authorization"] == "Bearer sk-local"
        data = [
            {"index": i, "embedding": [float(len(text)), 1.0]}
            for i, text in enumerate(body["input"])
        ]
        return httpx.Response(200, json={"data": list(reversed(data))})

    respx.post(f"{EMBED_URL}/embeddings").mock(side_effect=answer)
    async with make_async_client() as client:
        embedder = OpenAIEmbedder(
            client, EMBED_URL, model="nomic", api_key="sk-local", batch_size=2
        )
        vectors = await embedder.embed(["a", "bb", "ccc", "dddd", "eeeee"])
        assert [v[0] for v in vectors] == [1.0, 2.0, 3.0, 4.0, 5.0]
        assert calls == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
        assert await embedder.dimension() == 2
        assert embedder.identity == "openai/nomic"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500, text="boom"), "answered 500"),
        (httpx.Response(200, json={"nope": []}), "not an OpenAI embeddings response"),
        (httpx.Response(200, json={"data": []}), "returned 0 vectors for 1 inputs"),
    ],
)
@respx.mock
async def test_openai_backend_errors_are_clear(response: httpx.Response, message: str) -> None:
    respx.post(f"{EMBED_URL}/embeddings").mock(return_value=response)
    async with make_async_client() as client:
        with pytest.raises(EmbeddingError, match=message):
            await OpenAIEmbedder(client, EMBED_URL, model=None).embed(["x"])


@respx.mock
async def test_openai_backend_unreachable() -> None:
    respx.post(f"{EMBED_URL}/embeddings").mock(side_effect=httpx.ConnectError("refused"))
    async with make_async_client() as client:
        with pytest.raises(EmbeddingError, match=r"unreachable.*RAG_EMBEDDING_URL"):
            await OpenAIEmbedder(client, EMBED_URL, model=None).embed(["x"])


async def test_factory_picks_the_configured_backend(tmp_path: Path) -> None:
    async with make_async_client() as client:
        base = {"data_dir": tmp_path}
        default = build_embedder(RagSettings(**base), client)
        assert isinstance(default, MultilingualEmbedder)  # built, not loaded: no model read
        assert default.identity == "use-multilingual-v3/512"
        assert await default.dimension() == 512
        assert isinstance(
            build_embedder(RagSettings(**base, embedding_backend="hash"), client), HashEmbedder
        )
        openai = build_embedder(
            RagSettings(**base, embedding_backend="openai", embedding_url=EMBED_URL), client
        )
        assert isinstance(openai, OpenAIEmbedder)
