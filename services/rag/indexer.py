"""Indexing: documents from a request body or from files under the documents root.

A document is chunked, embedded and handed to the store, which replaces exactly
that document's previous chunks. Files are taken only from ``RAG_DOCUMENTS_DIR``:
every path, including the targets of symbolic links found while walking a
directory, must resolve inside it. Each file is then opened with ``O_NOFOLLOW`` and what
was opened (``/proc/self/fd``) must still be a regular file inside it, so a file or
directory swapped for a symbolic link after the check is refused (409/403), not read.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from services.core.errors import ApiError
from services.rag.chunking import chunk_text
from services.rag.embeddings import Embedder
from services.rag.formats import PDF_SIZE_FACTOR, SUFFIXES, UnreadableFile, extract_text
from services.rag.metrics import RagMetrics
from services.rag.sparse import document_vector
from services.rag.store import DocumentChunks, VectorStore

FILE_SUFFIXES = SUFFIXES


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexResult:
    document_id: str
    chunks_indexed: int
    chunks_removed: int


def _too_large(document_id: str, size: int, max_bytes: int) -> ApiError:
    return ApiError(
        413,
        f"document {document_id!r} is {size} bytes; the limit is {max_bytes} bytes "
        "(RAG_MAX_DOCUMENT_BYTES): split it into several documents or raise the limit",
        code="document_too_large",
    )


def check_size(document_id: str, text: str, max_bytes: int) -> None:
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise _too_large(document_id, size, max_bytes)
    if not text.strip():
        raise ApiError(
            422,
            f"document {document_id!r} has no text to index; send non-empty text "
            "(or delete the document instead)",
            code="empty_document",
        )


def check_count(count: int, max_documents: int) -> None:
    if count > max_documents:
        raise ApiError(
            413,
            f"{count} documents in one request; the limit is {max_documents} "
            "(RAG_MAX_DOCUMENTS): send them in several requests",
            code="too_many_documents",
        )


def _inside(root: Path, path: Path) -> bool:
    return path == root or path.is_relative_to(root)


def resolve_files(root: Path, requested: list[str]) -> list[Path]:
    """The indexable files (formats.SUFFIXES) that ``requested`` names, all inside root
    (directories recurse).

    Any number: the caller reads and indexes them in batches (never a 413 for a count).
    """
    if not root.is_dir():
        raise ApiError(
            404,
            f"the documents directory {root} does not exist; create it and put .md, .txt, "
            ".html or .pdf files there, or set RAG_DOCUMENTS_DIR",
            code="documents_dir_missing",
        )
    files: dict[Path, None] = {}
    for raw in requested:
        # A NUL byte cannot name a file (and makes resolve() raise): refuse it like an escape.
        candidate = root if "\x00" in raw else (root / raw).resolve()
        if not raw.strip() or "\x00" in raw or not _inside(root, candidate):
            raise ApiError(
                403,
                f"path {raw!r} is outside the documents directory (RAG_DOCUMENTS_DIR); give "
                "paths relative to it",
                code="path_outside_root",
                param="paths",
            )
        if candidate.is_dir():
            for path in sorted(candidate.rglob("*")):
                if path.suffix.lower() not in FILE_SUFFIXES or not path.is_file():
                    continue
                target = path.resolve()
                if not _inside(root, target):
                    raise ApiError(
                        403,
                        f"{path.relative_to(root)} links outside the documents directory; "
                        "remove the link or index the other files by name",
                        code="path_outside_root",
                        param="paths",
                    )
                files[target] = None
        elif candidate.is_file():
            if candidate.suffix.lower() not in FILE_SUFFIXES:
                raise ApiError(
                    422,
                    f"{raw!r} is not a .md, .txt, .html or .pdf file; only those are indexed",
                    code="unsupported_file_type",
                    param="paths",
                )
            files[candidate] = None
        else:
            raise ApiError(
                404, f"{raw!r} does not exist under the documents directory", code="not_found"
            )
    return list(files)


def _changed(relative: str, what: str) -> ApiError:
    return ApiError(
        409,
        f"{relative} {what} while it was being indexed; check the documents directory "
        "and send the request again",
        code="file_changed",
        param="paths",
    )


def _read_inside(root: Path, path: Path, relative: str, max_bytes: int) -> bytes:
    """The bytes of ``path``, opened without following a final symlink and checked to be
    a regular file inside ``root`` *as opened*: a file swapped for a symlink (or a
    directory swapped for one) between listing and reading is refused, never read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise _changed(relative, "was removed") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the name is now a symbolic link
            raise _changed(relative, "was replaced by a symbolic link") from None
        raise ApiError(
            403,
            f"{relative} cannot be read ({exc.strerror}); check its permissions",
            code="file_unreadable",
            param="paths",
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _changed(relative, "is no longer a regular file")
        # What was opened, wherever the name led (a parent swapped for a link included).
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if not _inside(root, opened):
            raise ApiError(
                403,
                f"{relative} now leads outside the documents directory (RAG_DOCUMENTS_DIR);"
                " remove the link",
                code="path_outside_root",
                param="paths",
            )
        if info.st_size > max_bytes:
            raise _too_large(relative, info.st_size, max_bytes)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew after fstat
        raise _too_large(relative, len(data), max_bytes)
    return data


def read_documents(root: Path, paths: list[Path], max_bytes: int) -> list[Document]:
    documents = []
    for path in paths:
        relative = path.relative_to(root).as_posix()
        pdf = path.suffix.lower() == ".pdf"
        data = _read_inside(root, path, relative, max_bytes * (PDF_SIZE_FACTOR if pdf else 1))
        try:
            text = extract_text(path.suffix, data)
        except UnreadableFile as exc:
            raise ApiError(422, f"{relative}: {exc}", code=exc.code, param="paths") from exc
        check_size(relative, text, max_bytes)
        metadata = {"path": relative, "type": path.suffix.lower().lstrip(".")}
        documents.append(Document(id=relative, text=text, source=relative, metadata=metadata))
    return documents


class Indexer:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        metrics: RagMetrics,
        *,
        chunk_size: int,
        chunk_overlap: int,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._metrics = metrics
        self._chunk_size = chunk_size
        self._chunk_overlap = chunk_overlap

    async def ensure_collection(self, name: str, owner: int | None = None) -> bool:
        dimension = await self._embedder.dimension()
        return await run_in_threadpool(
            self._store.create,
            name,
            embedder=self._embedder.identity,
            dimension=dimension,
            owner=owner,
        )

    async def index(
        self, collection: str, documents: list[Document], owner: int | None = None
    ) -> list[IndexResult]:
        """Index ``documents``; a collection created on the way belongs to ``owner``."""
        await self.ensure_collection(collection, owner)
        chunked = [
            chunk_text(document.text, size=self._chunk_size, overlap=self._chunk_overlap)
            for document in documents
        ]
        # All chunks of the request in one call: the embedder batches them
        # (RAG_EMBEDDING_BATCH_SIZE), which is far cheaper than a call per document.
        vectors = await self._metrics.embed(
            self._embedder, [chunk.text for chunks in chunked for chunk in chunks]
        )
        writes, position = [], 0
        for document, chunks in zip(documents, chunked, strict=True):
            writes.append(
                DocumentChunks(
                    document.id,
                    chunks,
                    vectors[position : position + len(chunks)],
                    document.source,
                    document.metadata,
                    sparse=[document_vector(c.text) for c in chunks],
                )
            )
            position += len(chunks)
        written = await run_in_threadpool(self._store.replace_documents, collection, writes)
        results = []
        for document, (indexed, removed) in zip(documents, written, strict=True):
            self._metrics.index_chunks.labels("upserted").inc(indexed)
            self._metrics.index_chunks.labels("removed").inc(removed)
            results.append(IndexResult(document.id, indexed, removed))
        return results
