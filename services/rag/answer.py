"""``answer: true``: a grounded answer from the gateway's chat completions.

The retrieved chunks go to ``POST {GATEWAY_URL}/v1/chat/completions`` as numbered
passages, in rank order, while they fit the context budget
(``RAG_ANSWER_CONTEXT_TOKENS``, approximate tokens); chunks that do not fit are
left out whole and counted in ``omitted_chunks``, never cut. The call carries the
caller's own ``Authorization`` header, so the gateway applies the caller's
permissions. Any failure becomes an :class:`AnswerUnavailable` with a message for
the response's ``answer_error``: the query itself still succeeds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from services.rag.chunking import estimate_tokens
from services.rag.store import Hit

SYSTEM_PROMPT = (
    "You answer questions using only the numbered context passages. Cite the passages "
    "you use with their numbers in square brackets, like [1] or [2][3]. If the passages "
    "do not contain the answer, say so. Answer in the language of the question."
)
_CITATION = re.compile(r"\[(\d{1,3})\]")


class AnswerUnavailable(RuntimeError):
    pass


def nothing_relevant(collection: str, min_score: float | None) -> dict[str, Any]:
    """The answer when no chunk passed the minimum score: say so, cite nothing, and do
    not ask the model (it would answer from noise or from its own memory)."""
    cut = f" scored at least {min_score:g}" if min_score is not None else " was found"
    return {
        "text": (
            f"Nothing relevant: no passage in collection {collection!r}{cut}, so the "
            "documents do not answer this question."
        ),
        "model": None,
        "found": False,
        "citations": [],
        "sources": [],
        "context_chunks": 0,
        "omitted_chunks": 0,
    }


@dataclass(frozen=True)
class Context:
    prompt: str
    used: list[Hit]
    omitted: int


def build_context(question: str, hits: Sequence[Hit], budget_tokens: int) -> Context:
    passages: list[str] = []
    used: list[Hit] = []
    spent = 0
    for hit in hits:
        passage = f"[{len(used) + 1}] (source: {hit.source}, chunk {hit.chunk_index})\n{hit.text}"
        cost = estimate_tokens(passage)
        if spent + cost > budget_tokens:
            continue  # a later, shorter chunk may still fit
        passages.append(passage)
        used.append(hit)
        spent += cost
    prompt = "Context passages:\n\n" + "\n\n".join(passages) + f"\n\nQuestion: {question}"
    return Context(prompt=prompt, used=used, omitted=len(hits) - len(used))


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


async def generate_answer(
    client: httpx.AsyncClient,
    *,
    gateway_url: str,
    authorization: str | None,
    model: str,
    question: str,
    hits: Sequence[Hit],
    budget_tokens: int,
    read_timeout: float,
) -> dict[str, Any]:
    if not hits:
        raise AnswerUnavailable("no chunks were retrieved, so there is nothing to answer from")
    context = build_context(question, hits, budget_tokens)
    if not context.used:
        raise AnswerUnavailable(
            f"no retrieved chunk fits the answer context budget of {budget_tokens} tokens; "
            "raise RAG_ANSWER_CONTEXT_TOKENS"
        )
    url = f"{gateway_url}/v1/chat/completions"
    headers = {"Authorization": authorization} if authorization else {}
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": context.prompt},
        ],
        "stream": False,
    }
    try:
        response = await client.post(url, json=body, headers=headers, timeout=read_timeout)
    except httpx.HTTPError as exc:
        raise AnswerUnavailable(
            f"the gateway at {gateway_url} could not be reached ({type(exc).__name__}); "
            "the retrieved chunks are returned without an answer"
        ) from exc
    if response.status_code != 200:
        raise AnswerUnavailable(
            f"the gateway answered {response.status_code}: {_error_message(response)}; "
            "the retrieved chunks are returned without an answer"
        )
    try:
        reply = response.json()
        text = str(reply["choices"][0]["message"]["content"] or "")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise AnswerUnavailable(
            "the gateway's reply was not a chat completion; the retrieved chunks are returned "
            "without an answer"
        ) from exc
    numbers = sorted({int(n) for n in _CITATION.findall(text) if 1 <= int(n) <= len(context.used)})
    return {
        "text": text,
        "model": reply.get("model", model),
        "citations": numbers,
        "sources": [
            {
                "n": n,
                "document_id": hit.document_id,
                "chunk_index": hit.chunk_index,
                "source": hit.source,
            }
            for n, hit in enumerate(context.used, start=1)
        ],
        "context_chunks": len(context.used),
        "omitted_chunks": context.omitted,
        "found": True,
    }
