"""RAG service settings, from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from services.core.settings import CoreSettings

EmbeddingBackend = Literal["hash", "sentence-transformers", "openai"]


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class RagSettings(CoreSettings):
    documents_dir: Path | None = Field(
        default=None,
        validation_alias=_env("RAG_DOCUMENTS_DIR", "documents_dir"),
        description="Root of the files that POST /collections/{name}/files may index; "
        "default <data_dir>/documents.",
    )
    qdrant_url: str | None = Field(
        default=None,
        validation_alias=_env("QDRANT_URL", "qdrant_url"),
        description="Qdrant server (or cluster) URL; unset means embedded local mode on disk.",
    )
    qdrant_api_key: str | None = Field(
        default=None, validation_alias=_env("QDRANT_API_KEY", "qdrant_api_key")
    )
    embedding_backend: EmbeddingBackend = Field(
        default="hash", validation_alias=_env("RAG_EMBEDDING_BACKEND", "embedding_backend")
    )
    embedding_model: str | None = Field(
        default=None,
        validation_alias=_env("RAG_EMBEDDING_MODEL", "embedding_model"),
        description="sentence-transformers: model directory; openai: model name.",
    )
    embedding_url: str | None = Field(
        default=None,
        validation_alias=_env("RAG_EMBEDDING_URL", "embedding_url"),
        description="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8003/v1.",
    )
    embedding_api_key: str | None = Field(
        default=None, validation_alias=_env("RAG_EMBEDDING_API_KEY", "embedding_api_key")
    )
    embedding_batch_size: int = Field(
        default=32, ge=1, le=2048, validation_alias=_env("RAG_EMBEDDING_BATCH_SIZE")
    )
    embedding_timeout: float = Field(
        default=60.0, gt=0, validation_alias=_env("RAG_EMBEDDING_TIMEOUT", "embedding_timeout")
    )
    hash_dimensions: int = Field(
        default=2048, ge=16, le=65536, validation_alias=_env("RAG_HASH_DIMENSIONS")
    )
    chunk_size: int = Field(
        default=512,
        ge=16,
        le=8192,
        validation_alias=_env("RAG_CHUNK_SIZE", "chunk_size"),
        description="Chunk size in approximate tokens (see services/rag/chunking.py).",
    )
    chunk_overlap: int = Field(
        default=100, ge=0, validation_alias=_env("RAG_CHUNK_OVERLAP", "chunk_overlap")
    )
    gateway_url: str | None = Field(
        default=None,
        validation_alias=_env("GATEWAY_URL", "gateway_url"),
        description="Where `answer: true` sends chat completions; default http://host:port.",
    )
    answer_model: str = Field(
        default="auto", min_length=1, validation_alias=_env("RAG_ANSWER_MODEL", "answer_model")
    )
    answer_context_tokens: int = Field(
        default=3000, ge=64, validation_alias=_env("RAG_ANSWER_CONTEXT_TOKENS")
    )
    answer_timeout: float = Field(
        default=120.0, gt=0, validation_alias=_env("RAG_ANSWER_TIMEOUT", "answer_timeout")
    )
    max_document_bytes: int = Field(
        default=1_048_576, ge=1, validation_alias=_env("RAG_MAX_DOCUMENT_BYTES")
    )
    max_documents: int = Field(default=100, ge=1, validation_alias=_env("RAG_MAX_DOCUMENTS"))
    max_query_chars: int = Field(default=2000, ge=1, validation_alias=_env("RAG_MAX_QUERY_CHARS"))
    cache_size: int = Field(
        default=256, ge=0, validation_alias=_env("RAG_CACHE_SIZE", "cache_size")
    )
    default_collection: str = Field(
        default="default", validation_alias=_env("RAG_DEFAULT_COLLECTION")
    )

    @model_validator(mode="after")
    def _consistent(self) -> RagSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"RAG_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than "
                f"RAG_CHUNK_SIZE ({self.chunk_size})"
            )
        if self.embedding_backend == "openai" and not self.embedding_url:
            raise ValueError(
                "RAG_EMBEDDING_BACKEND=openai needs RAG_EMBEDDING_URL, the base URL of an "
                "OpenAI-compatible server (e.g. http://127.0.0.1:8003/v1)"
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
        return self.data_dir / "qdrant"

    @property
    def resolved_gateway_url(self) -> str:
        return (self.gateway_url or self.service_url(self.gateway_port)).rstrip("/")
