"""The RAG service's own metrics (HTTP metrics come from services.core)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.core.metrics import LATENCY_BUCKETS
from services.rag.embeddings import Embedder
from services.rag.store import OPERATIONS

UNKNOWN_COLLECTION = "<unknown>"  # names that do not exist never become label values
QUERY_STATUSES = ("ok", "not_found", "error")


class RagMetrics:
    def __init__(self, registry: CollectorRegistry, backend: str) -> None:
        self.queries = Counter(
            "rag_queries_total",
            "Queries, by collection (existing ones only, others as <unknown>) and status.",
            ["collection", "status"],
            registry=registry,
        )
        self.query_duration = Histogram(
            "rag_query_duration_seconds",
            "Time to answer a query: embedding, search and (when asked) the answer.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.index_chunks = Counter(
            "rag_index_chunks_total",
            "Chunks written (upserted) or removed by indexing and deletion.",
            ["operation"],
            registry=registry,
        )
        self.vector_errors = Counter(
            "vector_search_errors_total",
            "Vector store (Qdrant) failures, by operation.",
            ["operation"],
            registry=registry,
        )
        self.embedding_duration = Histogram(
            "embedding_duration_seconds",
            "Time to embed one batch of texts, by embedding backend.",
            ["backend"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # Zero-valued series from the start, so dashboards and alerts see them.
        for operation in OPERATIONS:
            self.vector_errors.labels(operation)
        for operation in ("upserted", "removed"):
            self.index_chunks.labels(operation)
        self.queries.labels(UNKNOWN_COLLECTION, "not_found")
        self.embedding_duration.labels(backend)

    async def embed(self, embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
        started = time.perf_counter()
        try:
            return await embedder.embed(texts)
        finally:
            self.embedding_duration.labels(embedder.backend).observe(time.perf_counter() - started)
