"""What every RAG route module shares: the service's parts, permissions, and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import Depends

from services.core.errors import ApiError
from services.rag.cache import QueryCache
from services.rag.embeddings import Embedder, EmbeddingError
from services.rag.indexer import Indexer
from services.rag.metrics import RagMetrics
from services.rag.settings import RagSettings
from services.rag.store import NAME_RULE, StoreError, VectorStore, valid_collection_name
from services.security.audit import AuditEntry
from services.security.http_auth import requires
from services.security.rbac import Principal

Reader = Annotated[Principal, Depends(requires("rag:query"))]
Writer = Annotated[Principal, Depends(requires("rag:index"))]


@dataclass(frozen=True)
class Rag:
    """The parts ``create_app`` built, handed to each route module's ``router()``."""

    settings: RagSettings
    store: VectorStore
    embedder: Embedder
    indexer: Indexer
    cache: QueryCache
    metrics: RagMetrics
    client: httpx.AsyncClient
    min_score: float | None


def collection_name(name: str) -> str:
    if not valid_collection_name(name):
        raise ApiError(
            422,
            f"invalid collection name {name[:80]!r}: use {NAME_RULE}",
            code="invalid_collection_name",
            param="collection",
        )
    return name


def not_found(name: str) -> ApiError:
    return ApiError(
        404,
        f"collection {name!r} does not exist; create it with POST /collections or index "
        "documents into it",
        code="collection_not_found",
    )


def store_unavailable(exc: StoreError) -> ApiError:
    return ApiError(503, f"{exc}; try again later", code="vector_store_unavailable")


def embedding_unavailable(exc: EmbeddingError) -> ApiError:
    return ApiError(503, f"embedding failed: {exc}", code="embedding_unavailable")


def index_audit(principal: Principal, action: str, resource: str, **details: Any) -> AuditEntry:
    return AuditEntry(
        action="rag:index",
        outcome="ok",
        user=principal.user,
        user_id=principal.user_id,
        resource=resource,
        status=200,
        details={"operation": action, **details},
    )
