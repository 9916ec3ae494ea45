"""Embedding backends behind one interface (:class:`Embedder`), and the factory."""

from __future__ import annotations

import httpx

from services.rag.embeddings.base import Embedder, EmbeddingError
from services.rag.embeddings.hashing import HashEmbedder
from services.rag.embeddings.multilingual import MultilingualEmbedder
from services.rag.embeddings.openai_compat import OpenAIEmbedder
from services.rag.settings import RagSettings

__all__ = [
    "Embedder",
    "EmbeddingError",
    "HashEmbedder",
    "MultilingualEmbedder",
    "OpenAIEmbedder",
    "build_embedder",
]


def build_embedder(settings: RagSettings, client: httpx.AsyncClient) -> Embedder:
    """The backend ``RAG_EMBEDDING_BACKEND`` names; errors say how to fix the setting."""
    if settings.embedding_backend == "openai":
        return OpenAIEmbedder(
            client,
            settings.resolved_embedding_url,
            model=settings.embedding_model,
            api_key=settings.embedding_api_key,
            batch_size=settings.embedding_batch_size,
            timeout=settings.embedding_timeout,
        )
    if settings.embedding_backend == "hash":
        return HashEmbedder(settings.hash_dimensions)
    return MultilingualEmbedder(batch_size=settings.embedding_batch_size)
