"""The minimum score: chunks below it are never returned, and an answer says so.

The hash backend (pinned by the unit fixtures) has the calibrated cut-off 0.10
(services/rag/relevance.py); the multilingual model's side of it is tested in
tests/integration/rag/test_rag_multilingual.py.
"""

from __future__ import annotations

import respx

from services.rag.relevance import CALIBRATED_MIN_SCORES, default_min_score
from tests.unit.rag.conftest import GATEWAY, Rag

NOTE = {"id": "keys", "text": "Revoke an API key with ai-suite keys revoke and its id."}


def test_each_backend_has_its_cut_off_and_the_setting_replaces_it() -> None:
    assert default_min_score("hash", None) == CALIBRATED_MIN_SCORES["hash"]
    assert default_min_score("multilingual", None) == CALIBRATED_MIN_SCORES["multilingual"]
    assert default_min_score("openai", None) is None  # uncalibrated model: no cut-off
    assert default_min_score("multilingual", 0.5) == 0.5


async def test_a_chunk_just_above_the_cut_off_is_returned_and_just_below_is_not(rag: Rag) -> None:
    await rag.index("c", NOTE)
    everything = (await rag.query("c", "how to revoke a key", min_score=-1.0)).json()
    (hit,) = everything["results"]
    score = hit["score"]
    above = (await rag.query("c", "how to revoke a key", min_score=score - 1e-4)).json()
    below = (await rag.query("c", "how to revoke a key", min_score=score + 1e-4)).json()
    assert [h["document_id"] for h in above["results"]] == ["keys"]
    assert below["results"] == []
    assert below["min_score"] == score + 1e-4


async def test_an_unrelated_question_returns_nothing_with_the_default(rag: Rag) -> None:
    await rag.index("c", NOTE)
    related = (await rag.query("c", "revoke API key")).json()
    assert related["results"][0]["score"] >= related["min_score"] == 0.108
    unrelated = (await rag.query("c", "quantum chromodynamics")).json()
    assert unrelated["results"] == []


@respx.mock
async def test_answer_without_a_relevant_chunk_says_so_and_asks_no_model(rag: Rag) -> None:
    route = respx.post(f"{GATEWAY}/v1/chat/completions")
    await rag.index("c", NOTE)
    body = (await rag.query("c", "quantum chromodynamics", answer=True)).json()
    assert body["results"] == []
    assert body["answer"]["found"] is False
    assert "Nothing relevant" in body["answer"]["text"]
    assert "0.108" in body["answer"]["text"]
    assert not route.called


async def test_min_score_outside_cosine_range_is_422(rag: Rag) -> None:
    await rag.index("c", NOTE)
    response = await rag.query("c", "key", min_score=2)
    assert response.status_code == 422
