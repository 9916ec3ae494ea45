"""RAG metrics: present from the start, bounded labels, and counted as documented."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.unit.rag.conftest import Rag

RAG_METRICS = (
    "rag_queries_total",
    "rag_query_duration_seconds",
    "rag_index_chunks_total",
    "vector_search_errors_total",
    "embedding_duration_seconds",
    "rag_cache_hits_total",
    "rag_cache_misses_total",
)


async def test_every_metric_is_exposed_before_any_traffic(rag: Rag) -> None:
    text = (await rag.client.get("/metrics")).text
    for name in RAG_METRICS:
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert 'embedding_duration_seconds_count{backend="hash"} 0.0' in text
    assert 'vector_search_errors_total{operation="search"} 0.0' in text


async def test_queries_and_indexing_are_counted(rag: Rag) -> None:
    await rag.index("c", {"id": "a", "text": "One. Two."})
    assert await rag.sample("rag_index_chunks_total", operation="upserted") == 1
    await rag.index("c", {"id": "a", "text": "One."})
    await rag.query("c", "one")
    await rag.query("c", "one")
    assert await rag.sample("rag_queries_total", collection="c", status="ok") == 2
    assert await rag.sample("rag_query_duration_seconds_count") == 2
    assert await rag.sample("embedding_duration_seconds_count", backend="hash") == 3


async def test_unknown_collections_share_one_label(rag: Rag) -> None:
    for name in ("nope1", "nope2", "nope3"):
        assert (await rag.query(name, "x")).status_code == 404
    assert await rag.sample("rag_queries_total", collection="<unknown>", status="not_found") == 3
    text = (await rag.client.get("/metrics")).text
    assert "nope1" not in text


async def test_vector_store_failure_is_503_and_counted(make_rag: Callable[..., Any]) -> None:
    async for rag in make_rag(own_store=True):
        await _store_failure_is_503_and_counted(rag)


async def _store_failure_is_503_and_counted(rag: Rag) -> None:
    await rag.index("c", {"id": "a", "text": "text"})
    rag.app.state.store.close()  # the store is gone: every call now fails
    response = await rag.query("c", "text")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "vector_store_unavailable"
    assert await rag.sample("vector_search_errors_total", operation="collection") == 1
    assert await rag.sample("rag_queries_total", collection="<unknown>", status="error") == 1
    ready = await rag.client.get("/ready")
    assert ready.status_code == 503
    assert "vector_store" in ready.json()["not_ready"]
    indexing = await rag.index("c", {"id": "b", "text": "t"})
    assert indexing.status_code == 503
