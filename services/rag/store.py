"""Chunks in Qdrant: embedded local mode on disk, or a Qdrant server, one code path.

Correctness rules (each the opposite of a predecessor bug):

- A chunk's point id is ``uuid5(collection, document id, chunk index)``: indexing
  the same document again overwrites its own points, never another document's.
- Re-indexing upserts the new chunks, then deletes this document's points whose
  ``chunk_index`` is at or beyond the new count (by id: the old count is in chunk 0's
  payload), so a shrunken document leaves no stale chunks and nothing is duplicated.
  Writes are serialised per store; one request's documents are written together.
- Every change bumps the collection's version, kept in the Qdrant collection's own
  metadata (so all replicas against one server agree); the query cache keys on it.

Qdrant collections are named ``rag_<name>`` so the service only sees its own
collections on a shared server. The client is synchronous; the app calls it in a
worker thread. Local mode allows one process per folder (a file lock).
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from services.rag.chunking import Chunk

PREFIX = "rag_"
COLLECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
NAME_RULE = "1-63 characters: lower-case letters, digits, '_' and '-', starting with a letter/digit"
_POINT_NAMESPACE = uuid.UUID("8f4b2a52-6a2e-4c1e-9a55-6b3d9c1e7a10")
_UPSERT_BATCH = 256
SPARSE = "lexical"  # the sparse vector's name; the dense vector is Qdrant's unnamed one
# Hybrid: how many candidates each half proposes, and reciprocal rank fusion's k (the
# usual 60: a document's fused score is the sum of 1 / (60 + its rank in each list)).
_CANDIDATES = 50
RRF_K = 60
SparseVector = tuple[list[int], list[float]]
_SCROLL_PAGE = 512
log = logging.getLogger("ai_suite.rag.store")


class StoreError(RuntimeError):
    """Qdrant failed; ``operation`` is the bounded metric label."""

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(message)
        self.operation = operation


class CollectionNotFound(LookupError):
    pass


class CollectionExists(RuntimeError):
    pass


class EmbedderMismatch(RuntimeError):
    """The collection was built with another embedding model or dimension."""


OPERATIONS = ("search", "upsert", "delete", "read", "collection")


def valid_collection_name(name: str) -> bool:
    return bool(COLLECTION_NAME.fullmatch(name))


def point_id(collection: str, document_id: str, chunk_index: int) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{collection}\x00{document_id}\x00{chunk_index}"))


@dataclass(frozen=True)
class CollectionState:
    name: str
    points: int
    version: int
    embedder: str
    dimension: int
    # The user id that created it; None for collections made before owners were recorded.
    owner: int | None = None
    # Has the lexical sparse vector (hybrid retrieval); collections made before it do not.
    sparse: bool = False


@dataclass(frozen=True)
class Hit:
    text: str
    score: float
    document_id: str
    chunk_index: int
    source: str
    metadata: dict[str, Any]
    # The chunk's place in its document: how many chunks it has, and the character
    # range [char_start, char_end) of the document's text that this chunk holds.
    chunk_count: int = 0
    char_start: int = 0
    char_end: int = 0


@dataclass(frozen=True)
class DocumentChunks:
    """One document to write: its chunks, their dense (and optional sparse) vectors."""

    document_id: str
    chunks: Sequence[Chunk]
    vectors: Sequence[Sequence[float]]
    source: str
    metadata: dict[str, Any]
    sparse: Sequence[SparseVector] | None = None


def _points(name: str, doc: DocumentChunks, *, with_sparse: bool) -> list[models.PointStruct]:
    return [
        models.PointStruct(
            id=point_id(name, doc.document_id, chunk.index),
            vector=_point_vector(
                vector, doc.sparse[number] if with_sparse and doc.sparse is not None else None
            ),
            payload={
                "document_id": doc.document_id,
                "chunk_index": chunk.index,
                "chunk_count": len(doc.chunks),
                "char_start": chunk.start,
                "char_end": chunk.end,
                "text": chunk.text,
                "source": doc.source,
                "metadata": doc.metadata,
            },
        )
        for number, (chunk, vector) in enumerate(zip(doc.chunks, doc.vectors, strict=True))
    ]


@dataclass(frozen=True)
class DocumentSummary:
    document_id: str
    source: str
    chunks: int
    metadata: dict[str, Any] = field(default_factory=dict)


def _doc_filter(document_id: str) -> models.Filter:
    return models.Filter(
        must=[models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id))]
    )


def metadata_filter(filters: dict[str, Any] | None) -> models.Filter | None:
    if not filters:
        return None
    return models.Filter(
        must=[
            models.FieldCondition(key=f"metadata.{key}", match=models.MatchValue(value=value))
            for key, value in sorted(filters.items())
        ]
    )


class VectorStore:
    def __init__(self, client: QdrantClient, *, local: bool, description: str) -> None:
        self._client = client
        self.local = local
        self.description = description
        # Local mode is not thread-safe at all; on a server only writes need ordering
        # (upsert-then-delete and the version bump are one logical operation).
        self._write_lock = threading.RLock()
        self._read_lock: threading.RLock | None = self._write_lock if local else None
        self.on_error: Callable[[str], None] = lambda _operation: None

    @classmethod
    def open(cls, *, url: str | None, api_key: str | None, path: Path) -> VectorStore:
        if url:
            client = QdrantClient(url=url, api_key=api_key, timeout=30)
            return cls(client, local=False, description=f"Qdrant server {url}")
        path.mkdir(parents=True, exist_ok=True)
        try:
            client = QdrantClient(path=str(path), force_disable_check_same_thread=True)
        except RuntimeError as exc:
            raise RuntimeError(
                f"{exc} Local Qdrant mode allows one process per folder: stop the other RAG "
                f"service using {path}, or run a Qdrant server and set QDRANT_URL."
            ) from exc
        return cls(client, local=True, description=f"local Qdrant in {path}")

    def close(self) -> None:
        with self._write_lock:
            self._client.close()

    @contextmanager
    def _call(self, operation: str, *, write: bool = False) -> Iterator[None]:
        lock = self._write_lock if write else self._read_lock
        try:
            if lock is None:
                yield
            else:
                with lock:
                    yield
        except (CollectionNotFound, CollectionExists, EmbedderMismatch):
            raise
        except Exception as exc:  # any client/transport failure is a store failure
            self.on_error(operation)
            log.warning("qdrant %s failed: %s: %s", operation, type(exc).__name__, exc)
            raise StoreError(
                operation, f"vector store ({self.description}) failed during {operation}: {exc}"
            ) from exc

    # -- collections --------------------------------------------------------------

    def ping(self) -> None:
        with self._call("collection"):
            self._client.get_collections()

    def list_collections(self) -> list[CollectionState]:
        with self._call("collection"):
            names = sorted(
                c.name[len(PREFIX) :]
                for c in self._client.get_collections().collections
                if c.name.startswith(PREFIX)
            )
        states = []
        for name in names:
            try:
                states.append(self.state(name))
            except CollectionNotFound:  # deleted meanwhile
                continue
        return states

    def exists(self, name: str) -> bool:
        with self._call("collection"):
            return bool(self._client.collection_exists(PREFIX + name))

    def state(self, name: str) -> CollectionState:
        with self._call("collection"):
            if not self._client.collection_exists(PREFIX + name):
                raise CollectionNotFound(name)
            info = self._client.get_collection(PREFIX + name)
        meta = info.config.metadata or {}
        return CollectionState(
            name=name,
            points=int(info.points_count or 0),
            version=int(meta.get("rag_version", 0)),
            embedder=str(meta.get("rag_embedder", "")),
            dimension=int(meta.get("rag_dimension", 0)),
            owner=_owner(meta.get("rag_owner_id")),
            sparse=bool(meta.get("rag_sparse", False)),
        )

    def version(self, name: str) -> int:
        return self.state(name).version

    def create(self, name: str, *, embedder: str, dimension: int, owner: int | None = None) -> bool:
        """Create the collection; False when it already exists (with a compatible model).

        ``owner`` (a user id) is recorded for ownership checks (deleting the collection).
        """
        with self._call("collection", write=True):
            if self._client.collection_exists(PREFIX + name):
                self.check_embedder(name, embedder=embedder, dimension=dimension)
                return False
            self._client.create_collection(
                PREFIX + name,
                vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
                # The lexical index of hybrid retrieval; Qdrant keeps its IDF up to date.
                sparse_vectors_config={
                    SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
                metadata={
                    "rag_version": 0,
                    "rag_embedder": embedder,
                    "rag_dimension": dimension,
                    "rag_owner_id": owner,
                    "rag_sparse": True,
                },
            )
            if not self.local:
                # Server only: local mode ignores payload indexes (and warns about them).
                self._client.create_payload_index(
                    PREFIX + name, "document_id", models.PayloadSchemaType.KEYWORD
                )
                self._client.create_payload_index(
                    PREFIX + name, "chunk_index", models.PayloadSchemaType.INTEGER
                )
            return True

    def check_embedder(self, name: str, *, embedder: str, dimension: int) -> None:
        state = self.state(name)
        if state.embedder != embedder or state.dimension != dimension:
            raise EmbedderMismatch(
                f"collection {name!r} was indexed with embedder {state.embedder!r} "
                f"({state.dimension} dimensions) but this service uses {embedder!r} "
                f"({dimension} dimensions); delete and re-index the collection, or set "
                "RAG_EMBEDDING_BACKEND/RAG_EMBEDDING_MODEL back"
            )

    def drop(self, name: str) -> bool:
        with self._call("collection", write=True):
            if not self._client.collection_exists(PREFIX + name):
                return False
            self._client.delete_collection(PREFIX + name)
            return True

    def _bump(self, name: str) -> int:
        meta = self._client.get_collection(PREFIX + name).config.metadata or {}
        version = int(meta.get("rag_version", 0)) + 1
        self._client.update_collection(PREFIX + name, metadata={"rag_version": version})
        return version

    # -- documents ----------------------------------------------------------------

    def replace_document(
        self,
        name: str,
        document_id: str,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
        *,
        source: str,
        metadata: dict[str, Any],
        sparse: Sequence[SparseVector] | None = None,
    ) -> tuple[int, int]:
        """One document's points become exactly ``chunks``; returns (indexed, removed)."""
        (result,) = self.replace_documents(
            name,
            [DocumentChunks(document_id, chunks, vectors, source, metadata, sparse)],
        )
        return result

    def replace_documents(
        self, name: str, documents: Sequence[DocumentChunks]
    ) -> list[tuple[int, int]]:
        """Each document's points become exactly its chunks; (indexed, removed) each.

        One request's documents are written together, and the cost does not grow with
        the collection: the previous chunk counts are read from each document's chunk 0
        by point id (ids are derived, never searched for), the points are upserted in
        batches, the stale ones (chunk indexes from the new count to the old one) are
        deleted by id, and the version is bumped once. Sparse vectors are stored when the
        collection has the lexical index.
        """
        for doc in documents:
            if len(doc.chunks) != len(doc.vectors):
                raise ValueError(f"{len(doc.chunks)} chunks but {len(doc.vectors)} vectors")
        collection = PREFIX + name
        with self._write_lock:
            with_sparse = self.state(name).sparse  # raises CollectionNotFound
            points = [
                point for doc in documents for point in _points(name, doc, with_sparse=with_sparse)
            ]
            previous = self._chunk_counts(name, [doc.document_id for doc in documents])
            stale = [
                point_id(name, doc.document_id, index)
                for doc in documents
                for index in range(len(doc.chunks), previous.get(doc.document_id, 0))
            ]
            with self._call("upsert", write=True):
                for start in range(0, len(points), _UPSERT_BATCH):
                    self._client.upsert(
                        collection, points=points[start : start + _UPSERT_BATCH], wait=True
                    )
            if stale:
                with self._call("delete", write=True):
                    self._client.delete(
                        collection, points_selector=models.PointIdsList(points=stale), wait=True
                    )
            with self._call("collection", write=True):
                self._bump(name)
        return [
            (len(doc.chunks), max(0, previous.get(doc.document_id, 0) - len(doc.chunks)))
            for doc in documents
        ]

    def _chunk_counts(self, name: str, document_ids: Sequence[str]) -> dict[str, int]:
        """How many chunks each document has now (0: not indexed), from its chunk 0."""
        by_point = {point_id(name, doc, 0): doc for doc in document_ids}
        with self._call("read"):
            records = self._client.retrieve(
                PREFIX + name,
                ids=list(by_point),
                with_payload=["chunk_count"],
                with_vectors=False,
            )
        return {
            by_point[str(record.id)]: int((record.payload or {}).get("chunk_count", 0))
            for record in records
            if str(record.id) in by_point
        }

    def delete_document(self, name: str, document_id: str) -> int:
        with self._write_lock:
            if not self.exists(name):
                raise CollectionNotFound(name)
            removed = self._chunk_counts(name, [document_id]).get(document_id, 0)
            if removed:
                with self._call("delete", write=True):
                    self._client.delete(
                        PREFIX + name,
                        points_selector=models.FilterSelector(filter=_doc_filter(document_id)),
                        wait=True,
                    )
                with self._call("collection", write=True):
                    self._bump(name)
        return removed

    def documents(self, name: str) -> list[DocumentSummary]:
        """One entry per document, read from each document's chunk 0 (which holds the count)."""
        if not self.exists(name):
            raise CollectionNotFound(name)
        first_chunks = models.Filter(
            must=[models.FieldCondition(key="chunk_index", match=models.MatchValue(value=0))]
        )
        summaries: list[DocumentSummary] = []
        offset: Any = None
        while True:
            with self._call("read"):
                records, offset = self._client.scroll(
                    PREFIX + name,
                    scroll_filter=first_chunks,
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=["document_id", "source", "metadata", "chunk_count"],
                    with_vectors=False,
                )
            for record in records:
                payload = record.payload or {}
                summaries.append(
                    DocumentSummary(
                        document_id=str(payload.get("document_id", "")),
                        source=str(payload.get("source", "")),
                        chunks=int(payload.get("chunk_count", 0)),
                        metadata=dict(payload.get("metadata") or {}),
                    )
                )
            if offset is None:
                break
        return sorted(summaries, key=lambda s: s.document_id)

    def count(self, name: str) -> int:
        with self._call("read"):
            return int(self._client.count(PREFIX + name, exact=True).count)

    def search(
        self,
        name: str,
        vector: Sequence[float],
        *,
        top_k: int,
        filters: dict[str, Any] | None,
        min_score: float | None = None,
        lexical: SparseVector | None = None,
    ) -> list[Hit]:
        """The ``top_k`` nearest chunks whose cosine score is at least ``min_score``.

        With ``lexical`` (hybrid retrieval, on a collection that has the lexical index)
        the dense candidates above ``min_score`` are re-ranked by reciprocal rank fusion
        with the lexical ranking. The fusion runs here rather than in Qdrant so that the
        minimum score keeps its meaning: only chunks whose *cosine* score passes it are
        returned (a shared word alone never makes a chunk relevant), and each hit keeps
        its cosine score.
        """
        hybrid = lexical is not None and bool(lexical[0]) and self.state(name).sparse
        query_filter = metadata_filter(filters)
        with self._call("search"):
            dense = self._client.query_points(
                PREFIX + name,
                query=list(vector),
                limit=max(top_k, _CANDIDATES) if hybrid else top_k,
                query_filter=query_filter,
                score_threshold=min_score,
                with_payload=True,
            ).points
            if not hybrid or not dense:
                return [_hit(point) for point in dense]
            assert lexical is not None
            words = self._client.query_points(
                PREFIX + name,
                query=models.SparseVector(indices=lexical[0], values=lexical[1]),
                using=SPARSE,
                limit=_CANDIDATES,
                query_filter=query_filter,
                with_payload=False,
            ).points
        fused = {point.id: 1 / (RRF_K + rank) for rank, point in enumerate(dense, start=1)}
        for rank, point in enumerate(words, start=1):
            if point.id in fused:
                fused[point.id] += 1 / (RRF_K + rank)
        ranked = sorted(dense, key=lambda point: -fused[point.id])
        return [_hit(point) for point in ranked[:top_k]]


def _point_vector(dense: Sequence[float], sparse: SparseVector | None) -> Any:
    if sparse is None:
        return list(dense)
    return {"": list(dense), SPARSE: models.SparseVector(indices=sparse[0], values=sparse[1])}


def _hit(point: models.ScoredPoint) -> Hit:
    payload = point.payload or {}
    return Hit(
        text=str(payload.get("text", "")),
        score=float(point.score),
        document_id=str(payload.get("document_id", "")),
        chunk_index=int(payload.get("chunk_index", 0)),
        source=str(payload.get("source", "")),
        metadata=dict(payload.get("metadata") or {}),
        chunk_count=int(payload.get("chunk_count", 0)),
        char_start=int(payload.get("char_start", 0)),
        char_end=int(payload.get("char_end", 0)),
    )


def _owner(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
