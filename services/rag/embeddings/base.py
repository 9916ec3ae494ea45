"""The one interface every embedding backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


class EmbeddingError(RuntimeError):
    """The backend could not embed; the message says what to fix."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of one fixed dimension.

    ``backend`` is the metric label (``multilingual``, ``hash``, ``openai``);
    ``identity`` names backend and model, and is stored with each collection so a
    collection is never queried with vectors from a different model. ``load()``
    prepares a local model (the app calls it at startup, in the background);
    ``loaded`` feeds ``/ready``. Backends without a model are always loaded.
    """

    backend: str

    @property
    def identity(self) -> str: ...

    @property
    def loaded(self) -> bool: ...

    async def load(self) -> None: ...

    async def dimension(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...
