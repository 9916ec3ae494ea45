"""``POST /query``: nearest chunks above the minimum score, and optionally an answer."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from services.core.errors import ApiError
from services.rag.answer import AnswerUnavailable, generate_answer, nothing_relevant
from services.rag.cache import cache_key
from services.rag.embeddings import EmbeddingError
from services.rag.metrics import UNKNOWN_COLLECTION
from services.rag.routes.common import (
    Rag,
    Reader,
    collection_name,
    embedding_unavailable,
    not_found,
    store_unavailable,
)
from services.rag.schemas import QueryIn
from services.rag.sparse import query_vector
from services.rag.store import CollectionNotFound, Hit, StoreError


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "text": hit.text,
        "score": hit.score,
        "document_id": hit.document_id,
        "chunk_index": hit.chunk_index,
        "chunk_count": hit.chunk_count,
        "char_start": hit.char_start,
        "char_end": hit.char_end,
        "source": hit.source,
        "metadata": hit.metadata,
    }


def router(rag: Rag) -> APIRouter:
    routes = APIRouter()
    settings, vectors, embeddings, cache, metrics = (
        rag.settings,
        rag.store,
        rag.embedder,
        rag.cache,
        rag.metrics,
    )

    @routes.post("/query")
    async def query(body: QueryIn, request: Request, _: Reader) -> dict[str, Any]:
        name = collection_name(body.collection or settings.default_collection)
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
        min_score = body.min_score if body.min_score is not None else rag.min_score
        started = time.perf_counter()
        label = UNKNOWN_COLLECTION
        try:
            try:
                state = await run_in_threadpool(vectors.state, name)
            except CollectionNotFound as exc:
                metrics.queries.labels(UNKNOWN_COLLECTION, "not_found").inc()
                raise not_found(name) from exc
            label = name
            if state.embedder != embeddings.identity:
                raise ApiError(
                    409,
                    f"collection {name!r} was indexed with {state.embedder!r} but this service "
                    f"embeds with {embeddings.identity!r}: re-index it (DELETE /collections/"
                    f"{name}, then index its documents again), or set RAG_EMBEDDING_BACKEND "
                    "back to the backend that built it",
                    code="embedder_mismatch",
                )
            key = cache_key(name, state.version, text, body.top_k, body.filters, min_score)
            hits: list[Hit] | None = cache.get(key)
            cached = hits is not None
            if hits is None:
                (vector,) = await metrics.embed(embeddings, [text])
                lexical = query_vector(text) if settings.retrieval == "hybrid" else None
                found = await run_in_threadpool(
                    lambda: vectors.search(
                        name,
                        vector,
                        top_k=body.top_k,
                        filters=body.filters,
                        min_score=min_score,
                        lexical=lexical,
                    )
                )
                hits = found
                cache.put(key, found)
            response: dict[str, Any] = {
                "collection": name,
                "results": [hit_json(hit) for hit in hits],
                "min_score": min_score,
                "cached": cached,
            }
            if body.answer and not hits:
                response["answer"] = nothing_relevant(name, min_score)
            elif body.answer:
                try:
                    response["answer"] = await generate_answer(
                        rag.client,
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
            raise store_unavailable(exc) from exc
        except EmbeddingError as exc:
            metrics.queries.labels(label, "error").inc()
            raise embedding_unavailable(exc) from exc
        finally:
            metrics.query_duration.observe(time.perf_counter() - started)

    return routes
