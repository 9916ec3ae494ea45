from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.stubs.inference import create_stub_app
from tests.support.keys import make_key
from tests.support.live import free_port, serve_in_thread


@pytest.fixture
def stub_upstream() -> Iterator[str]:
    """Base URL (ending in /v1) of a stub OpenAI-compatible inference server."""
    with serve_in_thread(create_stub_app()) as url:
        yield f"{url}/v1"


@pytest.fixture
def dead_upstream() -> str:
    """An upstream URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/v1"


@dataclass
class Keys:
    db_path: Path

    def create(self, user: str, role: str) -> str:
        return make_key(self.db_path, user, role)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "data" / "security.db")


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a gateway on a real socket with a real SQLite file; returns its base URL."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            values: dict[str, Any] = {
                "data_dir": tmp_path / "data",
                "upstream_backoff_seconds": 0.01,
                **overrides,
            }
            settings = GatewaySettings(**values)
            return stack.enter_context(serve_in_thread(create_app(settings)))

        yield start
