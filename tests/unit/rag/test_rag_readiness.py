"""/ready follows the embedding model: not ready while it loads, the reason when it fails.

The real model loads once per process, so its timing cannot be held still in a test;
this embedder is the hash backend whose ``load()`` waits for the test (a double for
the model's load only; embedding is the real hash backend's).
"""

from __future__ import annotations

import asyncio

import httpx

from services.core.http import default_ssl_context
from services.rag.app import create_app
from services.rag.embeddings import EmbeddingError, HashEmbedder
from services.rag.settings import RagSettings
from services.rag.store import VectorStore


class GatedLoad(HashEmbedder):
    def __init__(self, fail: bool = False) -> None:
        super().__init__(64)
        self.release = asyncio.Event()
        self.fail = fail
        self._done = False

    @property
    def loaded(self) -> bool:
        return self._done

    async def load(self) -> None:
        await self.release.wait()
        if self.fail:
            raise EmbeddingError("weights missing: run `make install`")
        self._done = True


async def ready(settings: RagSettings, store: VectorStore, embedder: GatedLoad) -> list[dict]:
    app = create_app(settings, store=store, embedder=embedder)
    answers = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://rag",
            verify=default_ssl_context(),
        ) as client,
    ):
        answers.append((await client.get("/ready")).json())
        assert (await client.get("/health")).status_code == 200  # alive while loading
        embedder.release.set()
        for _ in range(100):  # the load task runs on this loop: let it finish
            await asyncio.sleep(0)
        answers.append((await client.get("/ready")).json())
    return answers


async def test_not_ready_until_the_model_is_loaded(rag_settings, shared_store) -> None:
    loading, loaded = await ready(rag_settings, shared_store, GatedLoad())
    assert loading["status"] == "not ready"
    assert loading["not_ready"] == ["embeddings"]
    assert loading["checks"]["embeddings"].startswith("loading the embedding model")
    assert loaded["status"] == "ready"


async def test_a_failed_load_is_the_reason(rag_settings, shared_store) -> None:
    _, failed = await ready(rag_settings, shared_store, GatedLoad(fail=True))
    assert failed["not_ready"] == ["embeddings"]
    assert "make install" in failed["checks"]["embeddings"]
