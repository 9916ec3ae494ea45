"""The RAG service: collections, indexing, queries, and answers through the gateway.

``create_app`` only assembles: it builds (or takes) the client, database, embedder
and vector store, starts loading the embedding model, registers the readiness
checks, and includes the route modules of :mod:`services.rag.routes`
(collections, documents, query).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from services.core.health import Check
from services.core.http import make_async_client
from services.rag.cache import QueryCache
from services.rag.embeddings import Embedder, build_embedder
from services.rag.indexer import Indexer
from services.rag.metrics import RagMetrics
from services.rag.relevance import default_min_score
from services.rag.routes import collections, documents, query
from services.rag.routes.common import Rag
from services.rag.settings import RagSettings
from services.rag.store import VectorStore
from services.security.bootstrap import secure_service_app
from services.security.db import Database

SERVICE = "rag"
log = logging.getLogger("ai_suite.rag")


def create_app(
    settings: RagSettings,
    *,
    http_client: httpx.AsyncClient | None = None,
    db: Database | None = None,
    registry: CollectorRegistry | None = None,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
) -> FastAPI:
    """Build the RAG service. Everything it uses is passed in or built here, never global."""
    owns_client = http_client is None
    client = http_client or make_async_client(read_timeout=settings.answer_timeout)
    owns_db = db is None
    database = db or Database(settings.security_db_path)
    embeddings = embedder or build_embedder(settings, client)
    owns_store = store is None
    vectors = store or VectorStore.open(
        url=settings.qdrant_url, api_key=settings.qdrant_api_key, path=settings.qdrant_path
    )
    # The model loads in the background from startup: /health answers at once, /ready
    # says "not ready" until the model is in memory, and an early query waits for it.
    loading: dict[str, asyncio.Task[None]] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loading["task"] = asyncio.create_task(embeddings.load())
        log.info(
            "rag starting: %s, embeddings %s (loading), documents under %s",
            vectors.description,
            embeddings.identity,
            settings.documents_root,
        )
        yield
        task = loading.pop("task")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task  # its failure was already reported by /ready
        await embeddings.aclose()
        if owns_store:
            vectors.close()  # releases local mode's folder lock
        if owns_client:
            await client.aclose()
        if owns_db:
            database.close()

    parts, _ = secure_service_app(
        SERVICE,
        database,
        registry=registry,
        lifespan=lifespan,
        limits=settings.request_limits,
    )
    app = parts.app
    metrics = RagMetrics(parts.registry, embeddings.backend)
    vectors.on_error = lambda operation: metrics.vector_errors.labels(operation).inc()
    cache = QueryCache(settings.cache_size, parts.registry)
    indexer = Indexer(
        vectors,
        embeddings,
        metrics,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
    )

    async def vector_store_ready() -> str | None:
        await run_in_threadpool(vectors.ping)
        return None

    async def embeddings_ready() -> str | None:
        if embeddings.loaded:
            return None
        task = loading.get("task")
        if task is not None and task.done() and not task.cancelled() and task.exception():
            return f"the embedding model failed to load: {task.exception()}"
        return f"loading the embedding model {embeddings.identity}"

    parts.checks.append(Check("vector_store", vector_store_ready))
    parts.checks.append(Check("embeddings", embeddings_ready))

    rag = Rag(
        settings=settings,
        store=vectors,
        embedder=embeddings,
        indexer=indexer,
        cache=cache,
        metrics=metrics,
        client=client,
        min_score=default_min_score(embeddings.backend, settings.min_score),
    )
    app.state.settings = settings
    app.state.store = vectors
    app.state.cache = cache
    app.state.embedder = embeddings
    app.include_router(collections.router(rag))
    app.include_router(documents.router(rag))
    app.include_router(query.router(rag))
    return app
