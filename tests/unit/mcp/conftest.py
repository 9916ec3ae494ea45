"""Fixtures for the MCP server unit tests: a migrated database, keys, an in-process app."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.core.http import default_ssl_context
from services.mcp.app import create_app
from services.mcp.sandbox import Workspace
from services.mcp.settings import McpSettings
from services.mcp.tools.base import ToolContext
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.rbac import Principal
from tests.support.keys import migrated_database


@pytest.fixture(scope="session")
def mcp_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_database(tmp_path_factory.mktemp("mcp-template") / "security.db")


@pytest.fixture
def data_dir(tmp_path: Path, mcp_template_db: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    shutil.copyfile(mcp_template_db, path / "security.db")
    return path


@pytest.fixture
def db(data_dir: Path) -> Iterator[Database]:
    database = Database(data_dir / "security.db")
    yield database
    database.close()


@pytest.fixture
def workspace_dir(data_dir: Path) -> Path:
    path = data_dir / "workspace"
    path.mkdir()
    return path


@dataclass
class Env:
    settings: McpSettings
    app: FastAPI
    client: httpx.AsyncClient
    db: Database
    workspace: Path
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, user: str, role: str) -> str:
        if user not in self.keys:
            self.keys[user] = KeyStore(self.db).create_key(user, role).key
        return self.keys[user]

    def headers(self, user: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(user, role)}"}

    async def call(self, tool: str, user: str, role: str, **body: Any) -> httpx.Response:
        return await self.client.post(
            f"/tools/{tool}/call", json=body, headers=self.headers(user, role)
        )


@pytest.fixture
async def make_env(
    data_dir: Path, workspace_dir: Path, db: Database
) -> AsyncIterator[Callable[..., Env]]:
    clients: list[httpx.AsyncClient] = []
    upstream = httpx.AsyncClient(verify=default_ssl_context())
    clients.append(upstream)

    def make(**overrides: Any) -> Env:
        values: dict[str, Any] = {"data_dir": data_dir, "rate_limit_per_minute": 10_000}
        values.update(overrides)
        settings = McpSettings(**values)
        app = create_app(settings, db=db, http_client=upstream)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        clients.append(client)
        return Env(settings, app, client, db, workspace_dir)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


@pytest.fixture
async def tool_ctx(
    data_dir: Path, workspace_dir: Path
) -> AsyncIterator[Callable[..., ToolContext]]:
    client = httpx.AsyncClient(verify=default_ssl_context())

    def make(**overrides: Any) -> ToolContext:
        settings = McpSettings(data_dir=data_dir, **overrides)
        return ToolContext(
            settings=settings,
            workspace=Workspace(settings.workspace_roots),
            principal=Principal(1, "alice", "developer", 1, "ais_xxxxxxxx"),
            http_client=client,
            authorization="Bearer ais_test",
        )

    yield make
    await client.aclose()
