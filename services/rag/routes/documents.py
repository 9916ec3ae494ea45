"""Indexing (``POST .../documents``, ``POST .../files``), listing and deleting documents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from services.core.errors import ApiError
from services.rag.embeddings import EmbeddingError
from services.rag.indexer import (
    Document,
    IndexResult,
    check_count,
    check_size,
    read_documents,
    resolve_files,
)
from services.rag.routes.common import (
    Rag,
    Reader,
    Writer,
    collection_name,
    embedding_unavailable,
    index_audit,
    not_found,
    store_unavailable,
)
from services.rag.schemas import DocumentsIn, FilesIn
from services.rag.store import CollectionNotFound, EmbedderMismatch, StoreError
from services.security.http_auth import audited_work
from services.security.rbac import Principal


def router(rag: Rag) -> APIRouter:
    routes = APIRouter()
    settings, vectors, cache = rag.settings, rag.store, rag.cache

    async def run_indexing(
        request: Request,
        principal: Principal,
        name: str,
        batches: AsyncIterator[list[Document]],
    ) -> dict[str, Any]:
        results: list[IndexResult] = []
        # Qdrant is outside the security database's transactions: an intent row before,
        # the outcome after (a kill -9 in between leaves 'interrupted' at the next start).
        async with audited_work(request, index_audit(principal, "index", name)) as done:
            try:
                async for documents in batches:
                    results += await rag.indexer.index(name, documents, owner=principal.user_id)
            except StoreError as exc:
                raise store_unavailable(exc) from exc
            except EmbeddingError as exc:
                raise embedding_unavailable(exc) from exc
            except EmbedderMismatch as exc:
                raise ApiError(409, str(exc), code="embedder_mismatch") from exc
            finally:
                # Even a partial failure may have changed points: nothing cached may
                # survive it; and the outcome row says how far it got.
                cache.invalidate(name)
                done.details.update(documents=len(results))
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

    @routes.post("/collections/{name}/documents")
    async def index_documents(
        name: str, body: DocumentsIn, request: Request, principal: Writer
    ) -> dict[str, Any]:
        collection_name(name)
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

        async def one_batch() -> AsyncIterator[list[Document]]:
            yield documents

        return await run_indexing(request, principal, name, one_batch())

    @routes.post("/collections/{name}/files")
    async def index_files(
        name: str, body: FilesIn, request: Request, principal: Writer
    ) -> dict[str, Any]:
        collection_name(name)
        root = settings.documents_root
        paths = await run_in_threadpool(resolve_files, root, body.paths)
        size = settings.max_documents

        async def batches() -> AsyncIterator[list[Document]]:
            # A folder of any size: RAG_MAX_DOCUMENTS files read and indexed at a time, so
            # memory holds one batch. A failing file stops the request there; the batches
            # before it stay indexed (indexing again is idempotent).
            for start in range(0, len(paths), size):
                yield await run_in_threadpool(
                    read_documents, root, paths[start : start + size], settings.max_document_bytes
                )

        return await run_indexing(request, principal, name, batches())

    @routes.get("/collections/{name}/documents")
    async def list_documents(name: str, _: Reader) -> dict[str, Any]:
        collection_name(name)
        try:
            docs = await run_in_threadpool(vectors.documents, name)
        except CollectionNotFound as exc:
            raise not_found(name) from exc
        except StoreError as exc:
            raise store_unavailable(exc) from exc
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

    @routes.delete("/collections/{name}/documents/{document_id:path}")
    async def delete_document(
        name: str, document_id: str, request: Request, principal: Writer
    ) -> dict[str, Any]:
        collection_name(name)
        entry = index_audit(principal, "delete_document", name, document=document_id)
        async with audited_work(request, entry):
            try:
                removed = await run_in_threadpool(vectors.delete_document, name, document_id)
            except CollectionNotFound as exc:
                raise not_found(name) from exc
            except StoreError as exc:
                raise store_unavailable(exc) from exc
            finally:
                cache.invalidate(name)
            if not removed:
                raise ApiError(
                    404,
                    f"document {document_id!r} is not in collection {name!r}",
                    code="document_not_found",
                )
        return {"collection": name, "id": document_id, "chunks_removed": removed}

    return routes
