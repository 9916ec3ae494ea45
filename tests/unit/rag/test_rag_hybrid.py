"""Hybrid retrieval (RAG_RETRIEVAL=hybrid): lexical sparse vectors and the fusion.

The benchmark decides the default (dense won: docs/benchmarks.md); these tests pin
what hybrid does: Korean-friendly tokens, BM25 weights, reciprocal rank fusion over
the dense candidates, and the minimum score still gating on the cosine score.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from qdrant_client import QdrantClient

from services.rag.chunking import Chunk
from services.rag.sparse import K1, document_vector, query_vector, tokens
from services.rag.store import RRF_K, VectorStore
from tests.unit.rag.conftest import Rag


def test_tokens_are_words_and_hangul_bigrams() -> None:
    assert tokens("How do I revoke the API key?") == ["revoke", "api", "key"]
    # Particles stay attached to Korean words; bigrams still meet: 문서를 / 문서는 -> 문서.
    assert "문서" in tokens("문서를")
    assert "문서" in tokens("문서는")
    assert tokens("키") == ["키"]  # a one-syllable word is its own token


def test_document_weights_saturate_and_queries_weigh_one() -> None:
    indices, values = document_vector("key key key other")
    assert sorted(values) == pytest.approx(sorted([1.0, 3 * (K1 + 1) / (3 + K1)]))
    assert indices == sorted(indices)
    q_indices, q_values = query_vector("key key other")
    assert set(q_indices) == set(indices)
    assert q_values == [1.0, 1.0]
    assert document_vector("key") == document_vector("key")  # stable across calls


@pytest.fixture
def store() -> Iterator[VectorStore]:
    vectors = VectorStore(QdrantClient(location=":memory:"), local=True, description="test")
    vectors.create("c", embedder="test", dimension=2)
    yield vectors
    vectors.close()


def put(store: VectorStore, doc: str, text: str, dense: list[float]) -> None:
    chunk = Chunk(index=0, text=text, start=0, end=len(text))
    store.replace_document(
        "c", doc, [chunk], [dense], source=doc, metadata={}, sparse=[document_vector(text)]
    )


def test_fusion_lifts_the_chunk_that_also_matches_the_words(store: VectorStore) -> None:
    put(store, "a", "sourdough starter feeding", [1.0, 0.0])
    put(store, "b", "rotate the leaked credentials", [0.9, 0.1])
    query = [1.0, 0.0]
    dense = store.search("c", query, top_k=2, filters=None)
    assert [h.document_id for h in dense] == ["a", "b"]
    hybrid = store.search("c", query, top_k=2, filters=None, lexical=query_vector("credentials"))
    # a: 1/(60+1); b: 1/(60+2) + 1/(60+1), so b wins, and keeps its cosine score.
    assert 1 / (RRF_K + 2) + 1 / (RRF_K + 1) > 1 / (RRF_K + 1)
    assert [h.document_id for h in hybrid] == ["b", "a"]
    assert hybrid[0].score == pytest.approx(0.9 / math.hypot(0.9, 0.1))


def test_a_word_match_alone_never_passes_the_minimum_score(store: VectorStore) -> None:
    put(store, "a", "sourdough starter feeding", [1.0, 0.0])
    put(store, "b", "rotate the leaked credentials", [0.0, 1.0])
    hits = store.search(
        "c", [1.0, 0.0], top_k=5, filters=None, min_score=0.5, lexical=query_vector("credentials")
    )
    assert [h.document_id for h in hits] == ["a"]  # b matches the word but its cosine is 0


async def test_hybrid_service_answers_with_the_same_shape(make_rag) -> None:
    async for rag in make_rag(retrieval="hybrid"):
        service: Rag = rag
        await service.index(
            "c",
            {"id": "keys", "text": "Revoke an API key with ai-suite keys revoke."},
            {"id": "bread", "text": "Feed the sourdough starter daily."},
        )
        body = (await service.query("c", "revoke the API key")).json()
        assert body["results"][0]["document_id"] == "keys"
        assert body["results"][0]["score"] >= body["min_score"]
        assert (await service.query("c", "quantum chromodynamics")).json()["results"] == []
