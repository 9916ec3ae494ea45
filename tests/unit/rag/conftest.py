"""Fixtures for the RAG unit tests: a service on a tmp data dir, called in-process."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from qdrant_client import QdrantClient

from services.core.http import default_ssl_context
from services.rag.app import create_app
from services.rag.settings import RagSettings
from services.rag.store import VectorStore
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import migrate

GATEWAY = "http://gateway.test"


@pytest.fixture(scope="session")
def rag_security_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rag-template") / "security.db"
    database = Database(path)
    migrate(database)
    store = KeyStore(database)
    keys = {role: store.create_key(f"{role}-user", role).key for role in ("viewer", "developer")}
    database.close()
    (path.parent / "keys.txt").write_text(f"{keys['viewer']}\n{keys['developer']}\n")
    return path


@pytest.fixture(scope="session")
def shared_store() -> Iterator[VectorStore]:
    """One local Qdrant for the session: opening one costs more than most RAG unit tests
    (qdrant-client copies its whole model schema per client). Emptied after each test.

    In memory: the same local engine as on disk, without writing every point to SQLite.
    On-disk storage is what ``own_store=True``, the integration tests and ``ai-suite up``
    use.
    """
    client = QdrantClient(location=":memory:")
    store = VectorStore(client, local=True, description="local Qdrant in memory")
    yield store
    store.close()


@dataclass
class Rag:
    app: Any
    client: httpx.AsyncClient
    settings: RagSettings
    viewer: dict[str, str]
    developer: dict[str, str]

    async def index(self, collection: str, *docs: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            f"/collections/{collection}/documents",
            json={"documents": list(docs)},
            headers=self.developer,
        )

    async def query(self, collection: str, query: str, **extra: Any) -> httpx.Response:
        return await self.client.post(
            "/query", json={"collection": collection, "query": query, **extra}, headers=self.viewer
        )

    async def sample(self, name: str, **labels: str) -> float:
        text = (await self.client.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return 0.0


@pytest.fixture
def rag_settings(tmp_path: Path, rag_security_template: Path) -> RagSettings:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(rag_security_template, data / "security.db")
    # Plumbing tests pin the hash backend: hermetic, fast, and exact-word queries are
    # what they need. The real default (multilingual) is tested in tests/integration/rag.
    return RagSettings(
        data_dir=data,
        embedding_backend="hash",
        chunk_size=48,
        chunk_overlap=8,
        hash_dimensions=256,
        gateway_url=GATEWAY,
        cache_size=8,
    )


@pytest.fixture
def make_rag(
    rag_settings: RagSettings,
    rag_security_template: Path,
    shared_store: VectorStore,
) -> Callable[..., Any]:
    viewer, developer = (rag_security_template.parent / "keys.txt").read_text().split()

    async def factory(*, own_store: bool = False, **overrides: Any) -> AsyncIterator[Rag]:
        """``own_store``: the app opens (and closes) its own Qdrant, for tests that break it."""
        settings = rag_settings.model_copy(update=overrides) if overrides else rag_settings
        http = httpx.AsyncClient(verify=default_ssl_context())
        store = None if own_store else shared_store
        app = create_app(settings, http_client=http, store=store)
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://rag",
                    verify=default_ssl_context(),
                ) as client,
            ):
                yield Rag(
                    app,
                    client,
                    settings,
                    {"Authorization": f"Bearer {viewer}"},
                    {"Authorization": f"Bearer {developer}"},
                )
        finally:
            await http.aclose()
            if store is not None:
                for collection in store.list_collections():
                    store.drop(collection.name)

    return factory


@pytest.fixture
async def rag(make_rag: Callable[..., Any]) -> AsyncIterator[Rag]:
    async for service in make_rag():
        yield service
