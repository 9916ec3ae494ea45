"""Fixtures for the gateway unit tests: the gateway in-process, its upstreams in-process.

Upstreams are ASGI apps (usually the inference stub) reached through one transport
that dispatches on the host name; a host without an app refuses the connection, like
a server that is down.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.gateway.app import create_app
from services.gateway.registry import ModelRegistry
from services.gateway.settings import GatewaySettings
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import migrate

ROLES = ("viewer", "developer", "admin")
UPSTREAM = "http://upstream.test/v1"


class HostRouter(httpx.AsyncBaseTransport):
    """Sends each request to the ASGI app of its host; unknown hosts refuse to connect."""

    def __init__(self, apps: Mapping[str, FastAPI]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        transport = self.transports.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"connection refused by {request.url.host}", request=request)
        return await transport.handle_async_request(request)


@dataclass
class Gateway:
    app: FastAPI
    client: httpx.AsyncClient
    router: HostRouter
    keys: dict[str, str]
    db: Database

    def auth(self, role: str = "developer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def chat(self, model: str = "chat", text: str = "hi", **extra: Any) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
        return await self.client.post("/v1/chat/completions", json=body, headers=self.auth())

    async def complete(self, model: str = "chat", prompt: Any = "hi", **extra: Any):
        body = {"model": model, "prompt": prompt, **extra}
        return await self.client.post("/v1/completions", json=body, headers=self.auth())

    async def embed(self, model: str = "chat", text: Any = "hi", **extra: Any):
        body = {"model": model, "input": text, **extra}
        return await self.client.post("/v1/embeddings", json=body, headers=self.auth())

    async def sample(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        text = (await self.client.get("/metrics")).text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def audit_rows(self) -> list[tuple[Any, ...]]:
        rows = self.db.query(
            "SELECT user_name, action, resource, outcome, status, details FROM audit_log"
            " ORDER BY id"
        )
        return [tuple(r) for r in rows]

    def upstream_requests(self, path: str) -> list[httpx.Request]:
        return [r for r in self.router.sent if r.url.path.endswith(path)]


@pytest.fixture(scope="session")
def gateway_security_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A migrated security database with one key per role, made once per session."""
    path = tmp_path_factory.mktemp("gateway-template") / "security.db"
    database = Database(path)
    migrate(database)
    store = KeyStore(database)
    keys = {role: store.create_key(f"{role}-user", role).key for role in ROLES}
    database.close()
    return path, keys


MakeGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway(
    tmp_path: Path, gateway_security_template: tuple[Path, dict]
) -> AsyncIterator[MakeGateway]:
    """``await make_gateway(upstreams={"upstream.test": stub}, **settings)``."""
    template, keys = gateway_security_template
    opened: list[tuple[httpx.AsyncClient, httpx.AsyncClient, Database]] = []

    async def make(
        upstreams: Mapping[str, FastAPI] | None = None,
        *,
        model_registry: ModelRegistry | None = None,
        **overrides: Any,
    ) -> Gateway:
        data = tmp_path / f"data{len(opened)}"
        data.mkdir()
        shutil.copy(template, data / "security.db")
        values: dict[str, Any] = {
            "data_dir": data,
            "upstream_backoff_seconds": 0,
            **overrides,
        }
        settings = GatewaySettings(**values)
        router = HostRouter(upstreams or {})
        upstream_client = httpx.AsyncClient(transport=router)
        db = Database(settings.security_db_path)
        app = create_app(
            settings, http_client=upstream_client, db=db, model_registry=model_registry
        )
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        )
        opened.append((client, upstream_client, db))
        return Gateway(app, client, router, keys, db)

    yield make
    for client, upstream_client, db in opened:
        await client.aclose()
        await upstream_client.aclose()
        db.close()
