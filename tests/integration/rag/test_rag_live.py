"""The RAG service on real sockets: indexing, restarts, answers through a real gateway."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import httpx
import pytest

Docs = list[dict[str, object]]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def long_doc(n: int, word: str = "weather") -> str:
    return " ".join(f"Sentence {i} is about the {word} in town {i}." for i in range(n))


def test_reindex_is_exact_against_each_store(start_rag, keys, qdrant_mode) -> None:
    base = start_rag(**qdrant_mode)
    dev = auth(keys.create("dev", "developer"))
    name = f"t-{uuid.uuid4().hex[:12]}"  # a shared server may hold other tests' collections
    with httpx.Client(base_url=base, headers=dev, timeout=30) as client:
        url = f"/collections/{name}/documents"
        docs = [{"id": "a", "text": long_doc(30)}, {"id": "b", "text": long_doc(30, "roads")}]
        first = client.post(url, json={"documents": docs}).json()
        count = first["chunks_indexed"]
        second = client.post(url, json={"documents": docs}).json()
        assert second["chunks_indexed"] == count
        state = {c["name"]: c for c in client.get("/collections").json()["collections"]}[name]
        assert state["points"] == count
        shrunk = client.post(url, json={"documents": [{"id": "a", "text": "Tiny."}]}).json()
        a_chunks = first["documents"][0]["chunks_indexed"]
        assert shrunk["documents"][0]["chunks_removed"] == a_chunks - 1
        listed = {d["id"]: d["chunks"] for d in client.get(url).json()["documents"]}
        assert listed == {"a": 1, "b": first["documents"][1]["chunks_indexed"]}
        assert client.delete(f"/collections/{name}").status_code == 200


def test_data_survives_a_restart_and_the_folder_lock_is_released(serve_rag, keys) -> None:
    dev = auth(keys.create("dev", "developer"))
    with serve_rag() as base:
        indexed = httpx.post(
            f"{base}/collections/kb/documents",
            json={"documents": [{"id": "ko", "text": "김치는 배추를 소금물에 절여서 만듭니다."}]},
            headers=dev,
        )
        assert indexed.status_code == 200, indexed.text
    with serve_rag() as base:  # the same data dir: local mode opens the same folder again
        result = httpx.post(
            f"{base}/query",
            json={"collection": "kb", "query": "배추를 소금물에 절이는 법"},
            headers=dev,
        ).json()
        assert result["results"][0]["document_id"] == "ko"


def test_answer_through_a_real_gateway(start_gateway, stub_upstream, start_rag, keys) -> None:
    gateway = start_gateway(inference_url=stub_upstream)
    base = start_rag(gateway_url=gateway)
    key = keys.create("dev", "developer")
    httpx.post(
        f"{base}/collections/kb/documents",
        json={"documents": [{"id": "readme", "text": "Run make test to run every test."}]},
        headers=auth(key),
    ).raise_for_status()
    body = httpx.post(
        f"{base}/query",
        json={"collection": "kb", "query": "How do I run the tests?", "answer": True},
        headers={**auth(key), "X-Request-ID": "rag-answer-1"},
        timeout=30,
    ).json()
    assert body["results"][0]["document_id"] == "readme"
    answer = body["answer"]
    # The stub echoes the prompt: the passages and the question reached the model.
    assert "[1] (source: readme, chunk 0)" in answer["text"]
    assert "Question: How do I run the tests?" in answer["text"]
    assert answer["citations"] == [1]
    assert "answer_error" not in body


def test_answer_with_the_gateway_down_returns_chunks(start_rag, keys, dead_upstream) -> None:
    base = start_rag(gateway_url=dead_upstream.removesuffix("/v1"))
    key = keys.create("dev", "developer")
    httpx.post(
        f"{base}/collections/kb/documents",
        json={"documents": [{"id": "a", "text": "Grounded text."}]},
        headers=auth(key),
    ).raise_for_status()
    response = httpx.post(
        f"{base}/query",
        json={"collection": "kb", "query": "grounded", "answer": True},
        headers=auth(key),
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["results"]
    assert response.json()["answer"] is None
    assert "could not be reached" in response.json()["answer_error"]


def test_metrics_pass_promtool(start_rag, keys) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (make system-deps installs Debian's prometheus)")
    base = start_rag()
    key = keys.create("dev", "developer")
    httpx.post(
        f"{base}/collections/kb/documents",
        json={"documents": [{"id": "a", "text": "Metrics text."}]},
        headers=auth(key),
    ).raise_for_status()
    httpx.post(f"{base}/query", json={"collection": "kb", "query": "metrics"}, headers=auth(key))
    httpx.post(f"{base}/query", json={"collection": "zz", "query": "metrics"}, headers=auth(key))
    text = httpx.get(f"{base}/metrics").text
    for name in ("rag_queries_total", "vector_search_errors_total", "embedding_duration_seconds"):
        assert name in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
