"""``answer: true``: a grounded answer through the gateway, or chunks with a clear note."""

from __future__ import annotations

import json

import httpx
import respx

from services.rag.answer import build_context
from services.rag.store import Hit
from tests.unit.rag.conftest import GATEWAY, Rag

COMPLETIONS = f"{GATEWAY}/v1/chat/completions"


def hit(text: str, n: int = 0) -> Hit:
    return Hit(
        text=text, score=1.0, document_id=f"d{n}", chunk_index=n, source=f"s{n}", metadata={}
    )


def test_context_keeps_rank_order_and_leaves_out_what_does_not_fit() -> None:
    hits = [hit("short one", 0), hit("word " * 200, 1), hit("short two", 2)]
    context = build_context("question?", hits, budget_tokens=40)
    assert [h.document_id for h in context.used] == ["d0", "d2"]
    assert context.omitted == 1
    assert "[1] (source: s0, chunk 0)\nshort one" in context.prompt
    assert "[2] (source: s2, chunk 2)\nshort two" in context.prompt
    assert context.prompt.endswith("Question: question?")


@respx.mock
async def test_answer_forwards_the_callers_key_and_cites_sources(rag: Rag) -> None:
    route = respx.post(COMPLETIONS).mock(
        return_value=httpx.Response(
            200,
            json={
                "model": "chat",
                "choices": [
                    {"message": {"role": "assistant", "content": "Use make test [1]. [9]"}}
                ],
            },
        )
    )
    await rag.index("c", {"id": "readme", "text": "Run make test to run the tests."})
    response = await rag.query("c", "how to run tests", answer=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"][0]["document_id"] == "readme"
    answer = body["answer"]
    assert answer["text"] == "Use make test [1]. [9]"
    assert answer["citations"] == [1]  # [9] names no passage
    assert answer["sources"][0] == {
        "n": 1,
        "document_id": "readme",
        "chunk_index": 0,
        "source": "readme",
    }
    assert answer["context_chunks"] == 1
    assert answer["omitted_chunks"] == 0
    sent = route.calls.last.request
    assert sent.headers["authorization"] == rag.viewer["Authorization"]
    payload = json.loads(sent.content)
    assert payload["model"] == "auto"
    assert "Run make test" in payload["messages"][1]["content"]
    assert "[1]" in payload["messages"][0]["content"]


@respx.mock
async def test_gateway_down_still_returns_the_chunks_with_a_note(rag: Rag) -> None:
    respx.post(COMPLETIONS).mock(side_effect=httpx.ConnectError("refused"))
    await rag.index("c", {"id": "a", "text": "Some knowledge."})
    response = await rag.query("c", "knowledge", answer=True)
    assert response.status_code == 200
    body = response.json()
    assert body["results"]
    assert body["answer"] is None
    assert "could not be reached" in body["answer_error"]
    assert "without an answer" in body["answer_error"]


@respx.mock
async def test_gateway_error_status_is_reported(rag: Rag) -> None:
    respx.post(COMPLETIONS).mock(
        return_value=httpx.Response(503, json={"error": {"message": "no inference backend"}})
    )
    await rag.index("c", {"id": "a", "text": "Some knowledge."})
    body = (await rag.query("c", "knowledge", answer=True)).json()
    assert body["answer_error"].startswith("the gateway answered 503: no inference backend")


@respx.mock
async def test_malformed_gateway_reply_is_reported(rag: Rag) -> None:
    respx.post(COMPLETIONS).mock(return_value=httpx.Response(200, json={"nope": 1}))
    await rag.index("c", {"id": "a", "text": "Some knowledge."})
    body = (await rag.query("c", "knowledge", answer=True)).json()
    assert "not a chat completion" in body["answer_error"]


async def test_no_hits_means_no_gateway_call(rag: Rag) -> None:
    await rag.index("c", {"id": "a", "text": "Some knowledge.", "metadata": {"k": "v"}})
    body = (await rag.query("c", "knowledge", answer=True, filters={"k": "other"})).json()
    assert body["results"] == []
    answer = body["answer"]
    assert answer["found"] is False
    assert answer["text"].startswith("Nothing relevant")
    assert (answer["citations"], answer["sources"], answer["model"]) == ([], [], None)
    assert "answer_error" not in body


async def test_budget_too_small_for_any_chunk(make_rag) -> None:
    async for rag in make_rag(answer_context_tokens=64, chunk_size=200, chunk_overlap=10):
        await rag.index("c", {"id": "a", "text": "word " * 150})
        body = (await rag.query("c", "word", answer=True)).json()
        assert "RAG_ANSWER_CONTEXT_TOKENS" in body["answer_error"]
