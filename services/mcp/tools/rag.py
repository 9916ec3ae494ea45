"""``rag_search``: the RAG service's query endpoint, called with the caller's key."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field

from services.mcp.tools.base import ToolArgs, ToolContext, ToolError, ToolSpec


class RagSearchArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=4000)
    collection: str = Field(default="default", min_length=1, max_length=128)
    top_k: int = Field(default=5, ge=1, le=50)


def _upstream_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))[:500]
    return str(body)[:500]


async def rag_search(ctx: ToolContext, args: RagSearchArgs) -> dict[str, Any]:
    url = f"{ctx.settings.rag_url}/query"
    headers = {"Authorization": ctx.authorization} if ctx.authorization else {}
    try:
        response = await ctx.http_client.post(
            url,
            json={"collection": args.collection, "query": args.query, "top_k": args.top_k},
            headers=headers,
        )
    except httpx.HTTPError as exc:
        raise ToolError(
            f"the RAG service at {ctx.settings.rag_url} is not reachable ({type(exc).__name__});"
            " `ai-suite status` shows why and `ai-suite restart rag` starts it again"
            " (`ai-suite up` if the platform is not running), or set RAG_URL",
            code="rag_unavailable",
            status=503,
        ) from None
    if response.status_code in (401, 403, 404):
        raise ToolError(
            f"the RAG service refused the query: {_upstream_message(response)}",
            code="rag_refused",
            status=response.status_code,
        )
    if response.status_code >= 400:
        raise ToolError(
            f"the RAG service answered {response.status_code}: {_upstream_message(response)}",
            code="rag_error",
            status=502,
        )
    try:
        body = response.json()
        results = body["results"]
    except (ValueError, KeyError, TypeError):
        raise ToolError(
            "the RAG service answered without a 'results' list", code="rag_error", status=502
        ) from None
    chunks = [
        {
            key: item.get(key)
            for key in ("text", "score", "document_id", "chunk_index", "source", "metadata")
        }
        for item in results
        if isinstance(item, dict)
    ]
    return {
        "collection": args.collection,
        "query": args.query,
        "results": chunks,
        "sources": sorted({str(c["source"]) for c in chunks if c.get("source")}),
    }


TOOLS = (
    ToolSpec(
        "rag_search",
        "Search an indexed document collection; returns matching chunks with their sources.",
        RagSearchArgs,
        rag_search,
        lambda a: {"collection": a.collection, "query": a.query[:100], "top_k": a.top_k},
    ),
)
