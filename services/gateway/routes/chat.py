"""``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from services.gateway.proxy import CHAT, InferenceProxy
from services.gateway.selection import classify_prompt
from services.security.http_auth import requires
from services.security.rbac import Principal

ChatUser = Annotated[Principal, Depends(requires(CHAT.permission))]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: Any = None


class ChatRequest(BaseModel):
    """Only what the gateway needs; every other field is forwarded untouched."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


def router(proxy: InferenceProxy) -> APIRouter:
    routes = APIRouter()

    @routes.post("/v1/chat/completions")
    async def chat_completions(
        body: ChatRequest, request: Request, principal: ChatUser
    ) -> Response:
        payload = body.model_dump(exclude_unset=False)
        return await proxy.forward(
            request,
            principal,
            CHAT,
            payload,
            stream=body.stream,
            auto_kind=lambda: classify_prompt(payload["messages"]),
        )

    return routes
