"""RAG as a new user meets it: `ai-suite up`, a developer key, the repository's own docs.

Requests go through the gateway (``/v1/rag/...`` is forwarded to the RAG service
with the caller's key); ``/metrics`` is read from the RAG service itself.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Platform

ROOT = Path(__file__).resolve().parents[2]
RAG_METRICS = (
    "rag_queries_total",
    "rag_query_duration_seconds",
    "rag_index_chunks_total",
    "vector_search_errors_total",
    "embedding_duration_seconds",
    "rag_cache_hits_total",
    "rag_cache_misses_total",
)


@pytest.fixture(scope="module")
def rag_client(shared_platform: Platform) -> Iterator[httpx.Client]:
    created = shared_platform.cli("keys", "create", "--user", "dev", "--role", "developer")
    assert created.returncode == 0, created.stderr
    documents = shared_platform.cwd / "data" / "documents"
    shutil.copytree(ROOT / "docs", documents / "docs", dirs_exist_ok=True)
    for name in ("README.md", "CLAUDE.md"):
        shutil.copy(ROOT / name, documents / name)
    with httpx.Client(
        base_url=f"{shared_platform.gateway_url}/v1/rag",
        headers={"Authorization": f"Bearer {created.stdout.strip()}"},
        timeout=120,
    ) as client:
        yield client


def points(client: httpx.Client, name: str) -> int:
    listed = client.get("/collections")
    assert listed.status_code == 200, listed.text
    return {c["name"]: c["points"] for c in listed.json()["collections"]}[name]


def test_repository_docs_answer_how_to_run_the_tests(rag_client: httpx.Client) -> None:
    paths = {"paths": ["docs", "README.md", "CLAUDE.md"]}
    first = rag_client.post("/collections/repo/files", json=paths)
    assert first.status_code == 200, first.text
    count = points(rag_client, "repo")
    assert count == first.json()["chunks_indexed"] > 0
    second = rag_client.post("/collections/repo/files", json=paths)
    assert second.status_code == 200, second.text
    assert second.json()["chunks_removed"] == 0
    assert points(rag_client, "repo") == count  # indexing twice: same number of points
    response = rag_client.post(
        "/query", json={"collection": "repo", "query": "how do I run the tests?", "top_k": 3}
    )
    assert response.status_code == 200, response.text
    top = response.json()["results"]
    assert any(
        "make test" in hit["text"] and hit["source"] in {"README.md", "CLAUDE.md"} for hit in top
    ), [(hit["source"], hit["text"][:60]) for hit in top]


def test_rag_metrics_are_exposed(shared_platform: Platform, rag_client: httpx.Client) -> None:
    rag_client.post("/query", json={"collection": "repo", "query": "metrics"})
    text = httpx.get(f"{shared_platform.urls['rag']}/metrics").text
    missing = [name for name in RAG_METRICS if name not in text]
    assert missing == []
