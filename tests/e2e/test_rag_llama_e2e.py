"""RAG's OpenAI-compatible embedding backend on a real llama.cpp server.

``rag-llama`` (tests/e2e/stack.yaml) is the RAG service with ``RAG_EMBEDDING_BACKEND=openai``
and ``RAG_EMBEDDING_URL`` at the llama server's ``/v1``: the vectors come from llama.cpp's
own ``/v1/embeddings`` (the tiny model's mean-pooled 64-wide states), not from a stub that
answers the way we expect. The tiny model knows no language, so what is proven is the
plumbing a real server exercises (request shape, the model name with a colon, response
parsing, dimension discovery, batching), not retrieval quality: that is the multilingual
backend's benchmark (docs/benchmarks.md). Optional, like the llama service: skipped with
the launcher's reason where llama.cpp is not built; `LLAMA_REQUIRED=1` makes it required.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from ai_suite_pytest.stack import Stack

from tests.support.keys import make_key
from tests.support.tiny_gguf import EMBEDDING_WIDTH

ALIAS = "tiny-llama:q8"
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def rag(stack: Stack) -> Iterator[httpx.Client]:
    url = stack.url("rag-llama")  # skips, with the reason, without llama
    key = make_key(stack.data_dir / "security.db", f"rag-{uuid.uuid4().hex[:8]}", "developer")
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT
    ) as client:
        yield client


def test_documents_are_embedded_by_llama_cpp_and_found_again(rag: httpx.Client) -> None:
    name = f"llama-{uuid.uuid4().hex[:8]}"
    assert rag.post("/collections", json={"name": name}).status_code == 201
    documents = [
        {"id": "noodles", "text": "Boil the noodles for four minutes, then rinse them cold."},
        {"id": "keys", "text": "Revoke an API key with ai-suite keys revoke and the key id."},
    ]
    indexed = rag.post(f"/collections/{name}/documents", json={"documents": documents})
    assert indexed.status_code == 200, indexed.text
    assert indexed.json()["chunks_indexed"] >= 2

    # The collection records the server's model and the dimension its vectors had.
    (state,) = [c for c in rag.get("/collections").json()["collections"] if c["name"] == name]
    assert state["dimension"] == EMBEDDING_WIDTH
    assert ALIAS in state["embedder"]

    # A document's own text is nearest to itself, whatever the model: the query's vector
    # and the stored one come from the same llama.cpp server.
    found = rag.post("/query", json={"collection": name, "query": documents[1]["text"]})
    assert found.status_code == 200, found.text
    hits = found.json()["results"]
    assert hits, found.json()
    assert hits[0]["document_id"] == "keys"
