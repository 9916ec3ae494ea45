"""Embedding backends behind one interface (:class:`Embedder`), and the factory."""

from __future__ import annotations

from pathlib import Path

import httpx

from services.rag.embeddings.base import Embedder, EmbeddingError
from services.rag.embeddings.hashing import HashEmbedder
from services.rag.embeddings.openai_compat import OpenAIEmbedder
from services.rag.embeddings.sentence_transformer import (
    SentenceTransformerEmbedder,
    packaged_model_dir,
)
from services.rag.settings import RagSettings

__all__ = ["Embedder", "EmbeddingError", "HashEmbedder", "OpenAIEmbedder", "build_embedder"]


def build_embedder(settings: RagSettings, client: httpx.AsyncClient) -> Embedder:
    """The backend ``RAG_EMBEDDING_BACKEND`` names; errors say how to fix the setting."""
    if settings.embedding_backend == "openai":
        assert settings.embedding_url is not None  # checked by RagSettings
        return OpenAIEmbedder(
            client,
            settings.embedding_url,
            model=settings.embedding_model,
            api_key=settings.embedding_api_key,
            batch_size=settings.embedding_batch_size,
            timeout=settings.embedding_timeout,
        )
    if settings.embedding_backend == "sentence-transformers":
        model_dir = (
            Path(settings.embedding_model).expanduser()
            if settings.embedding_model
            else packaged_model_dir()
        )
        return SentenceTransformerEmbedder(model_dir, batch_size=settings.embedding_batch_size)
    return HashEmbedder(settings.hash_dimensions)
