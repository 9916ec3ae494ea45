"""RAG service settings, from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator

from services.core.settings import CoreSettings, env_field

EmbeddingBackend = Literal["multilingual", "hash", "openai"]
Retrieval = Literal["dense", "hybrid"]


class RagSettings(CoreSettings):
    documents_dir: Path | None = env_field(
        "RAG_DOCUMENTS_DIR",
        default=None,
        description="Root of the files that POST /collections/{name}/files may index; "
        "default <data_dir>/documents.",
    )
    qdrant_url: str | None = env_field(
        "QDRANT_URL",
        default=None,
        description="Qdrant server (or cluster) URL; unset means embedded local mode on disk.",
    )
    qdrant_api_key: str | None = env_field(
        "QDRANT_API_KEY",
        default=None,
        description="API key of a Qdrant server that needs one (QDRANT_URL).",
    )
    qdrant_dir: Path | None = env_field(
        "QDRANT_PATH",
        default=None,
        description="Embedded mode only: the folder of the on-disk store; default "
        "<data_dir>/qdrant. Two RAG services sharing a data directory need one each (an "
        "embedded store is locked by the process that opens it).",
    )
    embedding_backend: EmbeddingBackend = env_field(
        "RAG_EMBEDDING_BACKEND",
        default="multilingual",
        description="multilingual (USE Multilingual v3, offline, CPU), hash (fast, for "
        "tests: shared words only) or openai (any /v1/embeddings, the gateway's by default).",
    )
    embedding_model: str | None = env_field(
        "RAG_EMBEDDING_MODEL",
        default=None,
        description="openai: the model name (a gateway alias or the server's model).",
    )
    embedding_url: str | None = env_field(
        "RAG_EMBEDDING_URL",
        default=None,
        description="openai: base URL of an OpenAI-compatible server; default the "
        "gateway's <GATEWAY_URL>/v1 (then RAG_EMBEDDING_API_KEY is a platform key).",
    )
    min_score: float | None = env_field(
        "RAG_MIN_SCORE",
        default=None,
        ge=-1.0,
        le=1.0,
        description="Cosine score below which a chunk is not returned; default the "
        "backend's calibrated value (services/rag/relevance.py).",
    )
    embedding_api_key: str | None = env_field(
        "RAG_EMBEDDING_API_KEY",
        default=None,
        description="openai backend: bearer token of the embedding server (a platform key for the"
        " gateway).",
    )
    retrieval: Retrieval = env_field(
        "RAG_RETRIEVAL",
        default="dense",
        description="dense (embeddings only; best on the benchmark) or hybrid (dense "
        "candidates re-ranked by reciprocal rank fusion with a lexical BM25 index).",
    )
    embedding_batch_size: int = env_field(
        "RAG_EMBEDDING_BATCH_SIZE",
        default=32,
        ge=1,
        le=2048,
        description="Texts per embedding request (and per batch of the local models).",
    )
    embedding_timeout: float = env_field(
        "RAG_EMBEDDING_TIMEOUT",
        default=60.0,
        gt=0,
        description="Seconds per embedding request to an openai backend.",
    )
    hash_dimensions: int = env_field(
        "RAG_HASH_DIMENSIONS",
        default=2048,
        ge=16,
        le=65536,
        description="Vector size of the hash backend.",
    )
    chunk_size: int = env_field(
        "RAG_CHUNK_SIZE",
        default=512,
        ge=16,
        le=8192,
        description="Chunk size in approximate tokens (see services/rag/chunking.py).",
    )
    chunk_overlap: int = env_field(
        "RAG_CHUNK_OVERLAP",
        default=100,
        ge=0,
        description="Approximate tokens repeated between consecutive chunks; smaller than "
        "RAG_CHUNK_SIZE.",
    )
    gateway_url: str | None = env_field(
        "GATEWAY_URL",
        default=None,
        description="The gateway: where `answer: true` sends chat completions, and the default"
        " base of the openai embedding backend; default http://AI_SUITE_HOST:GATEWAY_PORT.",
    )
    answer_model: str = env_field(
        "RAG_ANSWER_MODEL",
        default="auto",
        min_length=1,
        description="Model alias `answer: true` asks the gateway for.",
    )
    answer_context_tokens: int = env_field(
        "RAG_ANSWER_CONTEXT_TOKENS",
        default=3000,
        ge=64,
        description="Approximate tokens of retrieved chunks an answer's prompt may hold.",
    )
    answer_timeout: float = env_field(
        "RAG_ANSWER_TIMEOUT",
        default=120.0,
        gt=0,
        description="Seconds to wait for the gateway's answer.",
    )
    max_document_bytes: int = env_field(
        "RAG_MAX_DOCUMENT_BYTES",
        default=1_048_576,
        ge=1,
        description="Largest document (UTF-8 bytes of its text) indexed; larger ones get 413.",
    )
    max_documents: int = env_field(
        "RAG_MAX_DOCUMENTS",
        default=100,
        ge=1,
        description="Documents (or files) per indexing request; more get 413. /files reads this "
        "many at a time.",
    )
    max_query_chars: int = env_field(
        "RAG_MAX_QUERY_CHARS",
        default=2000,
        ge=1,
        description="Longest query text; longer ones get 422.",
    )
    cache_size: int = env_field(
        "RAG_CACHE_SIZE",
        default=256,
        ge=0,
        description="Entries of the query cache (LRU); 0 turns it off.",
    )
    default_collection: str = env_field(
        "RAG_DEFAULT_COLLECTION",
        default="default",
        description="Collection of a query that names none.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RagSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"RAG_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than "
                f"RAG_CHUNK_SIZE ({self.chunk_size})"
            )
        return self

    @property
    def port(self) -> int:
        return self.rag_port

    @property
    def documents_root(self) -> Path:
        root = self.documents_dir or self.data_dir / "documents"
        return root.expanduser().resolve()

    @property
    def qdrant_path(self) -> Path:
        return self.qdrant_dir or self.data_dir / "qdrant"

    @property
    def resolved_gateway_url(self) -> str:
        return (self.gateway_url or self.service_url(self.gateway_port)).rstrip("/")

    @property
    def resolved_embedding_url(self) -> str:
        """openai backend: RAG_EMBEDDING_URL, or the gateway's own /v1 (its /v1/embeddings
        forwards to a llama.cpp embedding model, Ollama or vLLM behind an alias)."""
        return (self.embedding_url or f"{self.resolved_gateway_url}/v1").rstrip("/")
