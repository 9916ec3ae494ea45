"""``POST /v1/embeddings``.

Model ``auto`` is refused with 400 (it chooses between generating models); aliases are
mapped like chat's, and other names go to the passthrough backend unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.proxy import EMBEDDINGS, InferenceProxy
from services.security.http_auth import requires
from services.security.rbac import Principal

EmbeddingUser = Annotated[Principal, Depends(requires(EMBEDDINGS.permission))]


class EmbeddingRequest(BaseModel):
    """Only what the gateway needs; every other field is forwarded untouched."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    # A string, a list of strings, or token ids (list of ints, list of lists of ints).
    input: str | list[str] | list[int] | list[list[int]]


def router(proxy: InferenceProxy) -> APIRouter:
    routes = APIRouter()

    @routes.post("/v1/embeddings")
    async def embeddings(
        body: EmbeddingRequest, request: Request, principal: EmbeddingUser
    ) -> Response:
        payload: dict[str, Any] = body.model_dump(exclude_unset=False)
        return await proxy.forward(request, principal, EMBEDDINGS, payload)

    return routes
