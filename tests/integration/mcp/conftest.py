"""An MCP server on a real socket with a real SQLite file, plus keys for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.mcp.app import create_app
from services.mcp.settings import McpSettings
from services.security.db import Database
from tests.support.keys import make_key
from tests.support.live import serve_in_thread


@dataclass
class McpServer:
    url: str
    data_dir: Path
    workspace: Path

    def key(self, user: str, role: str) -> str:
        return make_key(self.data_dir / "security.db", user, role)

    def audit_count(self, where: str = "1=1", params: tuple = ()) -> int:
        db = Database(self.data_dir / "security.db")
        try:
            row = db.query_one(f"SELECT COUNT(*) FROM audit_log WHERE {where}", params)
            return int(row[0])
        finally:
            db.close()


@pytest.fixture
def start_mcp(tmp_path: Path) -> Iterator[Callable[..., McpServer]]:
    with ExitStack() as stack:

        def start(**overrides: Any) -> McpServer:
            data_dir = tmp_path / "data"
            settings = McpSettings(data_dir=data_dir, **overrides)
            url = stack.enter_context(serve_in_thread(create_app(settings)))
            return McpServer(url, data_dir, settings.workspace_roots[0])

        yield start
