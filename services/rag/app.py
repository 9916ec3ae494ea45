"""The RAG service: collections, indexing, queries, and answers through the gateway."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from services.core.errors import ApiError
from services.core.health import Check
from services.core.http import make_async_client
from services.rag.answer import AnswerUnavailable, generate_answer
from services.rag.cache import QueryCache, cache_key
from services.rag.embeddings import Embedder, EmbeddingError, build_embedder
from services.rag.indexer import (
    Document,
    Indexer,
    IndexResult,
    check_count,
    check_size,
    read_documents,
    resolve_files,
)
from services.rag.metrics import UNKNOWN_COLLECTION, RagMetrics
from services.rag.schemas import CollectionIn, DocumentsIn, FilesIn, QueryIn
from services.rag.settings import RagSettings
from services.rag.store import (
    NAME_RULE,
    CollectionExists,
    CollectionNotFound,
    EmbedderMismatch,
    Hit,
    StoreError,
    VectorStore,
    valid_collection_name,
)
from services.security.audit import AuditEntry
from services.security.bootstrap import secure_service_app
from services.security.db import Database
from services.security.http_auth import audited_work, authorize, requires
from services.security.rbac import Principal

SERVICE = "rag"
log = logging.getLogger("ai_suite.rag")

Reader = Annotated[Principal, Depends(requires("rag:query"))]
Writer = Annotated[Principal, Depends(requires("rag:index"))]


def _collection(name: str) -> str:
    if not valid_collection_name(name):
        raise ApiError(
            422,
            f"invalid collection name {name[:80]!r}: use {NAME_RULE}",
            code="invalid_collection_name",
            param="collection",
        )
    return name


def _not_found(name: str) -> ApiError:
    return ApiError(
        404,
        f"collection {name!r} does not exist; create it with POST /collections or index "
        "documents into it",
        code="collection_not_found",
    )


def _store_unavailable(exc: StoreError) -> ApiError:
    return ApiError(503, f"{exc}; try again later", code="vector_store_unavailable")


def _embedding_unavailable(exc: EmbeddingError) -> ApiError:
    return ApiError(503, f"embedding failed: {exc}", code="embedding_unavailable")


async def _may_delete_others(
    request: Request, principal: Principal, name: str, owner: int | None
) -> None:
    """Only the creator deletes a collection, or a role with ``rag:manage`` (admin)."""
    try:
        await authorize(request, principal, "rag:manage")
    except ApiError as exc:
        whose = "another user" if owner is not None else "an unknown user (before owners were kept)"
        raise ApiError(
            403,
            f"collection {name!r} was created by {whose}: only its creator or an admin"
            " (permission 'rag:manage') may delete it; ask its creator or an admin",
            code="not_collection_owner",
        ) from exc


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "text": hit.text,
        "score": hit.score,
        "document_id": hit.document_id,
        "chunk_index": hit.chunk_index,
        "source": hit.source,
        "metadata": hit.metadata,
    }


def _index_audit(principal: Principal, action: str, resource: str, **details: Any) -> AuditEntry:
    return AuditEntry(
        action="rag:index",
        outcome="ok",
        user=principal.user,
        user_id=principal.user_id,
        resource=resource,
        status=200,
        details={"operation": action, **details},
    )


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

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info(
            "rag ready: %s, embeddings %s, documents under %s",
            vectors.description,
            embeddings.identity,
            settings.documents_root,
        )
        yield
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

    parts.checks.append(Check("vector_store", vector_store_ready))
    app.state.settings = settings
    app.state.store = vectors
    app.state.cache = cache
    app.state.embedder = embeddings

    async def run_indexing(
        request: Request, principal: Principal, name: str, documents: list[Document]
    ) -> dict[str, Any]:
        # Qdrant is outside the security database's transactions: an intent row before,
        # the outcome after (a kill -9 in between leaves 'interrupted' at the next start).
        entry = _index_audit(principal, "index", name, documents=len(documents))
        async with audited_work(request, entry) as done:
            try:
                results: list[IndexResult] = await indexer.index(
                    name, documents, owner=principal.user_id
                )
            except StoreError as exc:
                raise _store_unavailable(exc) from exc
            except EmbeddingError as exc:
                raise _embedding_unavailable(exc) from exc
            except EmbedderMismatch as exc:
                raise ApiError(409, str(exc), code="embedder_mismatch") from exc
            finally:
                # Even a partial failure may have changed points: nothing cached may
                # survive it.
                cache.invalidate(name)
            indexed = sum(r.chunks_indexed for r in results)
            removed = sum(r.chunks_removed for r in results)
            done.details.update(indexed=indexed, removed=removed)
        return {
            "collection": name,
            "documents": [
                {
                    "id": r.document_id,
                    "chunks_indexed": r.chunks_indexed,
                    "chunks_removed": r.chunks_removed,
                }
                for r in results
            ],
            "chunks_indexed": indexed,
            "chunks_removed": removed,
        }

    @app.get("/collections")
    async def list_collections(_: Reader) -> dict[str, Any]:
        try:
            states = await run_in_threadpool(vectors.list_collections)
        except StoreError as exc:
            raise _store_unavailable(exc) from exc
        return {
            "collections": [
                {
                    "name": s.name,
                    "points": s.points,
                    "version": s.version,
                    "embedder": s.embedder,
                    "dimension": s.dimension,
                }
                for s in states
            ]
        }

    @app.post("/collections", status_code=201)
    async def create_collection(
        body: CollectionIn, request: Request, principal: Writer
    ) -> dict[str, Any]:
        name = _collection(body.name)
        async with audited_work(request, _index_audit(principal, "create_collection", name)):
            try:
                created = await indexer.ensure_collection(name, owner=principal.user_id)
            except StoreError as exc:
                raise _store_unavailable(exc) from exc
            except (EmbedderMismatch, CollectionExists):
                created = False
            if not created:
                raise ApiError(409, f"collection {name!r} already exists", code="collection_exists")
        return {"name": name, "created": True}

    @app.delete("/collections/{name}")
    async def delete_collection(name: str, request: Request, principal: Writer) -> dict[str, Any]:
        _collection(name)
        try:
            state = await run_in_threadpool(vectors.state, name)
        except CollectionNotFound:
            raise _not_found(name) from None
        except StoreError as exc:
            raise _store_unavailable(exc) from exc
        if state.owner != principal.user_id:
            await _may_delete_others(request, principal, name, state.owner)
        async with audited_work(request, _index_audit(principal, "delete_collection", name)):
            try:
                dropped = await run_in_threadpool(vectors.drop, name)
            except StoreError as exc:
                raise _store_unavailable(exc) from exc
            finally:
                cache.invalidate(name)
            if not dropped:
                raise _not_found(name)
        return {"name": name, "deleted": True}

    @app.post("/collections/{name}/documents")
    async def index_documents(
        name: str, body: DocumentsIn, request: Request, principal: Writer
    ) -> dict[str, Any]:
        _collection(name)
        check_count(len(body.documents), settings.max_documents)
        seen: set[str] = set()
        documents = []
        for doc in body.documents:
            if doc.id in seen:
                raise ApiError(
                    422,
                    f"document id {doc.id!r} appears twice in one request; send each id once",
                    code="duplicate_document",
                )
            seen.add(doc.id)
            check_size(doc.id, doc.text, settings.max_document_bytes)
            source = doc.metadata.get("source")
            documents.append(
                Document(
                    id=doc.id,
                    text=doc.text,
                    source=source if isinstance(source, str) and source else doc.id,
                    metadata=dict(doc.metadata),
                )
            )
        return await run_indexing(request, principal, name, documents)

    @app.post("/collections/{name}/files")
    async def index_files(
        name: str, body: FilesIn, request: Request, principal: Writer
    ) -> dict[str, Any]:
        _collection(name)
        root = settings.documents_root

        def load() -> list[Document]:
            paths = resolve_files(root, body.paths, settings.max_documents)
            return read_documents(root, paths, settings.max_document_bytes)

        documents = await run_in_threadpool(load)
        return await run_indexing(request, principal, name, documents)

    @app.get("/collections/{name}/documents")
    async def list_documents(name: str, _: Reader) -> dict[str, Any]:
        _collection(name)
        try:
            docs = await run_in_threadpool(vectors.documents, name)
        except CollectionNotFound as exc:
            raise _not_found(name) from exc
        except StoreError as exc:
            raise _store_unavailable(exc) from exc
        return {
            "collection": name,
            "documents": [
                {
                    "id": d.document_id,
                    "source": d.source,
                    "chunks": d.chunks,
                    "metadata": d.metadata,
                }
                for d in docs
            ],
        }

    @app.delete("/collections/{name}/documents/{document_id:path}")
    async def delete_document(
        name: str, document_id: str, request: Request, principal: Writer
    ) -> dict[str, Any]:
        _collection(name)
        entry = _index_audit(principal, "delete_document", name, document=document_id)
        async with audited_work(request, entry):
            try:
                removed = await run_in_threadpool(vectors.delete_document, name, document_id)
            except CollectionNotFound as exc:
                raise _not_found(name) from exc
            except StoreError as exc:
                raise _store_unavailable(exc) from exc
            finally:
                cache.invalidate(name)
            if not removed:
                raise ApiError(
                    404,
                    f"document {document_id!r} is not in collection {name!r}",
                    code="document_not_found",
                )
        return {"collection": name, "id": document_id, "chunks_removed": removed}

    @app.post("/query")
    async def query(body: QueryIn, request: Request, _: Reader) -> dict[str, Any]:
        name = _collection(body.collection or settings.default_collection)
        text = body.query.strip()
        if not text:
            raise ApiError(422, "query is empty; send the question as text", code="empty_query")
        if len(body.query) > settings.max_query_chars:
            raise ApiError(
                422,
                f"query is {len(body.query)} characters; the limit is "
                f"{settings.max_query_chars} (RAG_MAX_QUERY_CHARS): shorten the question",
                code="query_too_long",
                param="query",
            )
        started = time.perf_counter()
        label = UNKNOWN_COLLECTION
        try:
            try:
                state = await run_in_threadpool(vectors.state, name)
            except CollectionNotFound as exc:
                metrics.queries.labels(UNKNOWN_COLLECTION, "not_found").inc()
                raise _not_found(name) from exc
            label = name
            if state.embedder != embeddings.identity:
                raise ApiError(
                    409,
                    f"collection {name!r} was indexed with {state.embedder!r} but this service "
                    f"embeds with {embeddings.identity!r}; re-index the collection",
                    code="embedder_mismatch",
                )
            key = cache_key(name, state.version, text, body.top_k, body.filters)
            hits: list[Hit] | None = cache.get(key)
            cached = hits is not None
            if hits is None:
                (vector,) = await metrics.embed(embeddings, [text])
                hits = await run_in_threadpool(
                    lambda: vectors.search(name, vector, top_k=body.top_k, filters=body.filters)
                )
                cache.put(key, hits)
            response: dict[str, Any] = {
                "collection": name,
                "results": [_hit_json(hit) for hit in hits],
                "cached": cached,
            }
            if body.answer:
                try:
                    response["answer"] = await generate_answer(
                        client,
                        gateway_url=settings.resolved_gateway_url,
                        authorization=request.headers.get("authorization"),
                        model=settings.answer_model,
                        question=text,
                        hits=hits,
                        budget_tokens=settings.answer_context_tokens,
                        read_timeout=settings.answer_timeout,
                    )
                except AnswerUnavailable as exc:
                    response["answer"] = None
                    response["answer_error"] = str(exc)
            metrics.queries.labels(name, "ok").inc()
            return response
        except StoreError as exc:
            metrics.queries.labels(label, "error").inc()
            raise _store_unavailable(exc) from exc
        except EmbeddingError as exc:
            metrics.queries.labels(label, "error").inc()
            raise _embedding_unavailable(exc) from exc
        finally:
            metrics.query_duration.observe(time.perf_counter() - started)

    return app
