"""Which model names the INFERENCE_URL server serves, for aliases without a pinned name.

llama.cpp answers whatever name it is sent, but Ollama, vLLM and LM Studio answer 404
for a model they do not have, so the alias ``chat`` must become a name the server
lists. ``INFERENCE_CHAT_MODEL`` / ``INFERENCE_CODE_MODEL`` pin the names; an alias
without a pinned name gets the first model of the server's ``GET /v1/models``.

Refresh policy: the list is reused for ``ttl`` seconds (INFERENCE_MODELS_TTL_SECONDS),
and is dropped at once when the server answers 404 for a discovered name (the model
was unloaded or replaced); the caller then discovers again and retries once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection

import httpx

from services.core.errors import ApiError

# Returns the ids of GET {backend}/models; raises httpx.HTTPError or ValueError.
ListModels = Callable[[], Awaitable[list[str]]]


class ModelDiscovery:
    """Upstream names for the aliases in ``aliases``, discovered from one server."""

    def __init__(
        self,
        url: str,
        list_models: ListModels,
        aliases: Collection[str],
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.aliases = frozenset(aliases)
        self._list_models = list_models
        self._ttl = ttl
        self._clock = clock
        self._ids: list[str] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    def discovers(self, alias: str) -> bool:
        """True if the upstream name of ``alias`` comes from discovery."""
        return alias in self.aliases

    def forget(self) -> None:
        """Drop the cached list: the next lookup asks the server again."""
        self._ids = None

    async def listed(self) -> list[str]:
        """The server's model ids, from the cache while it is fresh."""
        async with self._lock:
            if self._ids is None or self._clock() - self._fetched_at >= self._ttl:
                try:
                    ids = await self._list_models()
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    raise ApiError(
                        503,
                        f"cannot discover the models of the inference server at {self.url} "
                        f"({_reason(exc)}). Check that it is running (`ai-suite status`), "
                        "or set INFERENCE_CHAT_MODEL and INFERENCE_CODE_MODEL to the model "
                        "names it serves, then restart the gateway",
                        code="model_discovery_failed",
                        headers={"Retry-After": "5"},
                    ) from exc
                self._ids = ids
                self._fetched_at = self._clock()
            return list(self._ids)

    async def upstream_name(self, alias: str) -> str:
        """The first model the server lists; 503 saying what to do if it lists none."""
        ids = await self.listed()
        if not ids:
            raise ApiError(
                503,
                f"the inference server at {self.url} lists no models in GET /v1/models, so "
                f"the gateway cannot map {alias!r} to one: load a model there (for Ollama: "
                f"`ollama pull <model>`), or set INFERENCE_{alias.upper()}_MODEL",
                code="model_discovery_failed",
                headers={"Retry-After": "5"},
            )
        return ids[0]


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"GET /models answered {exc.response.status_code}"
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return f"cannot connect: {type(exc).__name__}"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"GET /models did not answer an OpenAI model list: {exc}"
