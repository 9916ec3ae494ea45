"""``openai`` embeddings: any OpenAI-compatible ``POST /v1/embeddings`` endpoint.

llama.cpp (``--embedding``), Ollama, vLLM and TEI all serve this route, and so does
the platform's own gateway, the default URL (``<GATEWAY_URL>/v1``). Texts are
sent in batches of ``RAG_EMBEDDING_BATCH_SIZE``; the answer's ``index`` fields put
vectors back in input order.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from services.rag.embeddings.base import EmbeddingError


class OpenAIEmbedder:
    backend = "openai"

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        *,
        model: str | None,
        api_key: str | None = None,
        batch_size: int = 32,
        timeout: float = 60.0,
    ) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model or "default"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._batch_size = batch_size
        self._timeout = timeout
        self._dimension: int | None = None

    @property
    def identity(self) -> str:
        return f"openai/{self._model}"

    @property
    def loaded(self) -> bool:
        return True  # no model to load

    async def load(self) -> None:
        return None

    async def dimension(self) -> int:
        if self._dimension is None:
            (vector,) = await self.embed(["dimension probe"])
            self._dimension = len(vector)
        return self._dimension

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors.extend(await self._batch(list(texts[start : start + self._batch_size])))
        return vectors

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        try:
            response = await self._client.post(
                self._url,
                json={"model": self._model, "input": texts},
                headers=self._headers,
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise EmbeddingError(
                f"embedding server {self._url} is unreachable ({type(exc).__name__}: {exc}); "
                "check RAG_EMBEDDING_URL and that the server is running"
            ) from exc
        if response.status_code != 200:
            hint = (
                "; check RAG_EMBEDDING_API_KEY (for the gateway: a platform key)"
                if response.status_code in (401, 403)
                else ""
            )
            raise EmbeddingError(
                f"embedding server {self._url} answered {response.status_code}: "
                f"{response.text[:300]}{hint}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(
                f"embedding server {self._url} sent an answer that is not an OpenAI "
                f"embeddings response: {exc!r}"
            ) from exc
        if len(vectors) != len(texts):
            raise EmbeddingError(
                f"embedding server {self._url} returned {len(vectors)} vectors "
                f"for {len(texts)} inputs"
            )
        return vectors

    async def aclose(self) -> None:
        return None
