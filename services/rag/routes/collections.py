"""``GET/POST /collections`` and ``DELETE /collections/{name}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from services.core.errors import ApiError
from services.rag.routes.common import (
    Rag,
    Reader,
    Writer,
    collection_name,
    index_audit,
    not_found,
    store_unavailable,
)
from services.rag.schemas import CollectionIn
from services.rag.store import CollectionExists, CollectionNotFound, EmbedderMismatch, StoreError
from services.security.http_auth import audited_work, authorize
from services.security.rbac import Principal


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


def router(rag: Rag) -> APIRouter:
    routes = APIRouter()
    vectors, cache = rag.store, rag.cache

    @routes.get("/collections")
    async def list_collections(_: Reader) -> dict[str, Any]:
        try:
            states = await run_in_threadpool(vectors.list_collections)
        except StoreError as exc:
            raise store_unavailable(exc) from exc
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

    @routes.post("/collections", status_code=201)
    async def create_collection(
        body: CollectionIn, request: Request, principal: Writer
    ) -> dict[str, Any]:
        name = collection_name(body.name)
        # Qdrant is outside the security database's transactions: an intent row before,
        # the outcome after (a kill -9 in between leaves 'interrupted' at the next start).
        async with audited_work(request, index_audit(principal, "create_collection", name)):
            try:
                created = await rag.indexer.ensure_collection(name, owner=principal.user_id)
            except StoreError as exc:
                raise store_unavailable(exc) from exc
            except (EmbedderMismatch, CollectionExists):
                created = False
            if not created:
                raise ApiError(409, f"collection {name!r} already exists", code="collection_exists")
        return {"name": name, "created": True}

    @routes.delete("/collections/{name}")
    async def delete_collection(name: str, request: Request, principal: Writer) -> dict[str, Any]:
        collection_name(name)
        try:
            state = await run_in_threadpool(vectors.state, name)
        except CollectionNotFound:
            raise not_found(name) from None
        except StoreError as exc:
            raise store_unavailable(exc) from exc
        if state.owner != principal.user_id:
            await _may_delete_others(request, principal, name, state.owner)
        async with audited_work(request, index_audit(principal, "delete_collection", name)):
            try:
                dropped = await run_in_threadpool(vectors.drop, name)
            except StoreError as exc:
                raise store_unavailable(exc) from exc
            finally:
                cache.invalidate(name)
            if not dropped:
                raise not_found(name)
        return {"name": name, "deleted": True}

    return routes
