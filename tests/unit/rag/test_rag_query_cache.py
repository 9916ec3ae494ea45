"""The query cache: keyed on collection version, query, top_k and filters; bounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.rag.cache import QueryCache, cache_key
from tests.unit.rag.conftest import Rag


def test_key_includes_every_part() -> None:
    base = cache_key("c", 1, "q", 5, {"a": 1, "b": "x"})
    assert base == cache_key("c", 1, "q", 5, {"b": "x", "a": 1})  # order-free filters
    assert base != cache_key("c", 2, "q", 5, {"a": 1, "b": "x"})
    assert base != cache_key("c", 1, "q", 6, {"a": 1, "b": "x"})
    assert base != cache_key("c", 1, "Q", 5, {"a": 1, "b": "x"})
    assert base != cache_key("d", 1, "q", 5, {"a": 1, "b": "x"})
    assert cache_key("c", 1, "q", 5, None) == cache_key("c", 1, "q", 5, {})


def test_lru_is_bounded_and_invalidation_is_per_collection() -> None:
    cache = QueryCache(2, CollectorRegistry())
    k1, k2, k3 = (cache_key("c", 1, q, 5, None) for q in "abc")
    cache.put(k1, ["1"])
    cache.put(k2, ["2"])
    assert cache.get(k1) == ["1"]  # k1 becomes most recent
    cache.put(k3, ["3"])
    assert cache.get(k2) is None
    assert len(cache) == 2
    other = cache_key("other", 1, "a", 5, None)
    cache.put(other, ["o"])
    cache.invalidate("c")
    assert cache.get(k3) is None
    assert cache.get(other) == ["o"]
    assert cache.hits._value.get() == 2
    assert cache.misses._value.get() == 2


def test_size_zero_disables_the_cache() -> None:
    cache = QueryCache(0, CollectorRegistry())
    key = cache_key("c", 1, "q", 5, None)
    cache.put(key, ["x"])
    assert cache.get(key) is None
    assert len(cache) == 0


async def test_repeat_query_is_cached_until_the_collection_changes(rag: Rag) -> None:
    await rag.index("c", {"id": "a", "text": "Cats sleep a lot."})
    first = (await rag.query("c", "cats", top_k=3)).json()
    second = (await rag.query("c", "cats", top_k=3)).json()
    assert first["cached"] is False
    assert second["cached"] is True
    assert second["results"] == first["results"]
    assert (await rag.query("c", "cats", top_k=4)).json()["cached"] is False  # top_k in key
    await rag.index("c", {"id": "b", "text": "Cats also purr."})
    after = (await rag.query("c", "cats", top_k=3)).json()
    assert after["cached"] is False
    assert {h["document_id"] for h in after["results"]} == {"a", "b"}
    await rag.client.delete("/collections/c/documents/b", headers=rag.developer)
    after_delete = (await rag.query("c", "cats", top_k=3)).json()
    assert after_delete["cached"] is False
    assert {h["document_id"] for h in after_delete["results"]} == {"a"}
    assert await rag.sample("rag_cache_hits_total") == 1
    assert await rag.sample("rag_cache_misses_total") == 4


async def test_recreated_collection_never_serves_old_results(rag: Rag) -> None:
    await rag.index("c", {"id": "a", "text": "Old content about owls."})
    assert (await rag.query("c", "owls")).json()["results"]
    await rag.client.delete("/collections/c", headers=rag.developer)
    await rag.index("c", {"id": "n", "text": "New content about owls."})
    fresh = (await rag.query("c", "owls")).json()
    assert fresh["cached"] is False
    assert [h["document_id"] for h in fresh["results"]] == ["n"]
