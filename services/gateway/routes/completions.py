"""``POST /v1/completions``: the legacy text completions API, streaming too.

Authorised by ``chat:create`` (the same models generating text; see docs/gateway.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.proxy import COMPLETIONS, InferenceProxy
from services.gateway.selection import ModelKind, classify_prompt
from services.security.http_auth import requires
from services.security.rbac import Principal

CompletionUser = Annotated[Principal, Depends(requires(COMPLETIONS.permission))]


class CompletionRequest(BaseModel):
    """Only what the gateway needs; every other field is forwarded untouched."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    # A string, a list of strings, or token ids (list of ints, list of lists of ints).
    prompt: str | list[str] | list[int] | list[list[int]]
    stream: bool = False


def prompt_kind(prompt: str | list[str] | list[int] | list[list[int]]) -> ModelKind:
    """Classify a completions prompt for model "auto" as one user message.

    Token ids carry no text the heuristic can read, so they count as chat.
    """
    texts = [prompt] if isinstance(prompt, str) else [p for p in prompt if isinstance(p, str)]
    return classify_prompt([{"role": "user", "content": "\n".join(texts)}])


def router(proxy: InferenceProxy) -> APIRouter:
    routes = APIRouter()

    @routes.post("/v1/completions")
    async def completions(
        body: CompletionRequest, request: Request, principal: CompletionUser
    ) -> Response:
        payload: dict[str, Any] = body.model_dump(exclude_unset=False)
        return await proxy.forward(
            request,
            principal,
            COMPLETIONS,
            payload,
            stream=body.stream,
            auto_kind=lambda: prompt_kind(body.prompt),
        )

    return routes
