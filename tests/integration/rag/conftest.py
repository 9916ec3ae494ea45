"""Fixtures for RAG integration tests: the service on a real socket, on a tmp data dir."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest

from services.rag.app import create_app
from services.rag.settings import RagSettings
from tests.support.live import serve_in_thread

# Set to a Qdrant server (e.g. http://127.0.0.1:6333) to run the store tests against it too.
QDRANT_TEST_URL = os.environ.get("RAG_TEST_QDRANT_URL")


def rag_settings(data_dir: Path, **overrides: Any) -> RagSettings:
    # Plumbing tests pin the hash backend (fast, exact words); tests of the default
    # multilingual model pass embedding_backend="multilingual".
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "embedding_backend": "hash",
        "chunk_size": 96,
        "chunk_overlap": 16,
    }
    values.update(overrides)
    return RagSettings(**values)


@pytest.fixture
def serve_rag(tmp_path: Path) -> Callable[..., AbstractContextManager[str]]:
    """``with serve_rag(**settings) as url``: a RAG service on a real socket (data in tmp)."""

    def serve(**overrides: Any) -> AbstractContextManager[str]:
        return serve_in_thread(create_app(rag_settings(tmp_path / "data", **overrides)))

    return serve


@pytest.fixture
def start_rag(
    serve_rag: Callable[..., AbstractContextManager[str]],
) -> Iterator[Callable[..., str]]:
    """Start a RAG service for the rest of the test; returns its base URL."""
    with ExitStack() as stack:
        yield lambda **overrides: stack.enter_context(serve_rag(**overrides))


@pytest.fixture(params=["local", "server"])
def qdrant_mode(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides for local mode, and for a server when RAG_TEST_QDRANT_URL is set."""
    if request.param == "server":
        if not QDRANT_TEST_URL:
            pytest.skip("no Qdrant server: set RAG_TEST_QDRANT_URL=http://127.0.0.1:6333 to run")
        return {"qdrant_url": QDRANT_TEST_URL}
    return {}
