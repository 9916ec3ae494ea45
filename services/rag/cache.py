"""The query cache: bounded LRU, keyed so that a stale answer cannot be returned.

The key holds the collection, the collection's *version* (bumped by every change
in the store), the query text, ``top_k`` and the filters, so a re-index or a
deletion makes old entries unreachable at once (the predecessor ignored ``top_k``
and survived re-indexing). Changes also drop the collection's entries explicitly
to free memory. ``size = 0`` disables caching.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from prometheus_client import CollectorRegistry, Counter

CacheKey = tuple[str, int, str, int, str, float | None]


def cache_key(
    collection: str,
    version: int,
    query: str,
    top_k: int,
    filters: dict[str, Any] | None,
    min_score: float | None = None,
) -> CacheKey:
    canonical = json.dumps(filters or {}, sort_keys=True, ensure_ascii=False)
    return (collection, version, query, top_k, canonical, min_score)


class QueryCache:
    def __init__(self, size: int, registry: CollectorRegistry) -> None:
        self._size = size
        self._entries: OrderedDict[CacheKey, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = Counter("rag_cache_hits_total", "Query cache hits.", registry=registry)
        self.misses = Counter(
            "rag_cache_misses_total",
            "Query cache misses (including a disabled cache).",
            registry=registry,
        )

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> Any | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses.inc()
                return None
            self._entries.move_to_end(key)
        self.hits.inc()
        return value

    def put(self, key: CacheKey, value: Any) -> None:
        if self._size == 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def invalidate(self, collection: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == collection]:
                del self._entries[key]
