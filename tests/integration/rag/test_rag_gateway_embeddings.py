"""RAG_EMBEDDING_BACKEND=openai without RAG_EMBEDDING_URL: the RAG service embeds through
the platform's own gateway (``<GATEWAY_URL>/v1/embeddings``) with a platform key, so
whatever embedding model the gateway serves (llama.cpp ``--embedding``, Ollama, vLLM)
is used. Here the gateway's upstream is the stub (8-dimensional vectors); the path
RAG -> gateway -> upstream is the real one, sockets included."""

from __future__ import annotations

import httpx


def test_rag_embeds_through_the_gateway(start_gateway, start_rag, stub_upstream, keys) -> None:
    gateway = start_gateway(inference_url=stub_upstream)
    service_key = keys.create("rag-service", "developer")
    rag = start_rag(
        embedding_backend="openai",
        gateway_url=gateway,
        embedding_model="stub-model:latest",
        embedding_api_key=service_key,
    )
    dev = {"Authorization": f"Bearer {keys.create('dev', 'developer')}"}
    with httpx.Client(base_url=rag, headers=dev, timeout=60) as client:
        indexed = client.post(
            "/collections/kb/documents",
            json={"documents": [{"id": "a", "text": "Revoke API keys with ai-suite keys revoke."}]},
        )
        assert indexed.status_code == 200, indexed.text
        (state,) = client.get("/collections").json()["collections"]
        assert state["embedder"] == "openai/stub-model:latest"
        assert state["dimension"] == 8  # the stub's vectors, so they came through the gateway
        found = client.post("/query", json={"collection": "kb", "query": "revoke a key"}).json()
        assert found["min_score"] is None  # no calibrated cut-off for an unknown model
        assert [hit["document_id"] for hit in found["results"]] == ["a"]


def test_a_wrong_gateway_key_is_a_503_that_says_so(start_gateway, start_rag, stub_upstream, keys):
    gateway = start_gateway(inference_url=stub_upstream)
    rag = start_rag(
        embedding_backend="openai",
        gateway_url=gateway,
        embedding_model="stub-model:latest",
        embedding_api_key="ais_not_a_key",
    )
    dev = {"Authorization": f"Bearer {keys.create('dev', 'developer')}"}
    response = httpx.post(
        f"{rag}/collections/kb/documents",
        json={"documents": [{"id": "a", "text": "text"}]},
        headers=dev,
        timeout=60,
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "embedding_unavailable"
    assert "answered 401" in error["message"]
    assert "RAG_EMBEDDING_API_KEY" in error["message"]
