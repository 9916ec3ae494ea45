"""The API gateway: OpenAI-compatible routes in front of local inference servers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from services.core.auth import audit, requires
from services.core.errors import ApiError
from services.core.http import make_async_client
from services.gateway.forward import Target, add_forwarding
from services.gateway.registry import ModelRegistry, load_registry
from services.gateway.selection import classify_prompt
from services.gateway.settings import GatewaySettings
from services.gateway.upstream import LlmMetrics, NoBackendAvailable, UpstreamPool
from services.security.audit import AuditEntry
from services.security.bootstrap import secure_service_app
from services.security.db import Database
from services.security.rbac import Principal

SERVICE = "gateway"
AUTO_MODEL = "auto"
PASSTHROUGH_LABEL = "<passthrough>"  # unknown names must not become metric labels
log = logging.getLogger("ai_suite.gateway")

NOT_CONFIGURED = (
    "no inference backend is configured: set INFERENCE_URL to an OpenAI-compatible base URL "
    "(for example INFERENCE_URL=http://127.0.0.1:8001/v1 for llama.cpp, "
    "http://127.0.0.1:11434/v1 for Ollama) or MODEL_REGISTRY to a model registry YAML file, "
    "then restart the gateway"
)


ModelReader = Annotated[Principal, Depends(requires("models:read"))]
ChatUser = Annotated[Principal, Depends(requires("chat:create"))]


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


def create_app(
    settings: GatewaySettings,
    *,
    http_client: httpx.AsyncClient | None = None,
    db: Database | None = None,
    registry: CollectorRegistry | None = None,
    model_registry: ModelRegistry | None = None,
) -> FastAPI:
    """Build the gateway. Everything it uses is passed in or built here, never global."""
    owns_client = http_client is None
    client = http_client or make_async_client(
        connect_timeout=settings.upstream_connect_timeout,
        read_timeout=settings.upstream_read_timeout,
    )
    models = model_registry or load_registry(settings.model_registry, settings.inference_url)
    owns_db = db is None
    database = db or Database(settings.security_db_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info(
            "gateway ready: %d model(s), %d backend(s)",
            len(models.list_models()),
            len(models.backends),
        )
        yield
        if owns_client:
            await client.aclose()
        if owns_db:
            database.close()

    parts, _ = secure_service_app(SERVICE, database, registry=registry, lifespan=lifespan)
    app = parts.app
    pool = UpstreamPool(
        models,
        client,
        LlmMetrics(parts.registry),
        retries=settings.upstream_retries,
        backoff_seconds=settings.upstream_backoff_seconds,
        failure_threshold=settings.breaker_failure_threshold,
        reset_seconds=settings.breaker_reset_seconds,
    )
    app.state.settings = settings
    app.state.models = models
    app.state.upstream = pool

    @app.get("/v1/models")
    async def list_models(_: ModelReader) -> dict[str, Any]:
        data: list[dict[str, Any]] = [
            {
                "id": entry.name,
                "object": "model",
                "created": 0,
                "owned_by": "local-ai-suite",
                "kind": str(entry.kind),
                "backends": list(entry.backends),
            }
            for entry in models.list_models()
        ]
        if models.list_models():
            data.insert(
                0,
                {
                    "id": AUTO_MODEL,
                    "object": "model",
                    "created": 0,
                    "owned_by": "local-ai-suite",
                    "kind": "auto",
                    "backends": [],
                },
            )
        known = {item["id"] for item in data}
        if models.passthrough_backend:
            backend = models.backend(models.passthrough_backend)
            try:
                upstream_ids = await pool.list_upstream_models(backend)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("backend %s did not list its models: %s", backend.name, exc)
                upstream_ids = []
            data.extend(
                {
                    "id": mid,
                    "object": "model",
                    "created": 0,
                    "owned_by": backend.name,
                    "kind": "passthrough",
                    "backends": [backend.name],
                }
                for mid in upstream_ids
                if mid not in known
            )
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(
        body: ChatRequest,
        request: Request,
        principal: ChatUser,
    ) -> Response:
        if not models.backends:
            raise ApiError(503, NOT_CONFIGURED, code="no_backend_configured")
        payload = body.model_dump(exclude_unset=False)
        if body.model == AUTO_MODEL:
            kind = classify_prompt(payload["messages"])
            resolved = models.resolve_auto(kind)
            if resolved is None:
                raise ApiError(
                    404,
                    f"model 'auto' chose a {kind} model, but the registry has none of that kind",
                    code="model_not_found",
                    param="model",
                )
        else:
            resolved = models.resolve(body.model)
            if resolved is None:
                names = ", ".join([AUTO_MODEL, *(m.name for m in models.list_models())])
                raise ApiError(
                    404,
                    f"model {body.model!r} is not in the registry; available: {names}",
                    code="model_not_found",
                    param="model",
                )
        label = resolved.alias if not resolved.passthrough else PASSTHROUGH_LABEL
        payload["model"] = resolved.upstream_model
        try:
            upstream = await pool.post(label, resolved.backends, "/chat/completions", payload)
        except NoBackendAvailable as exc:
            await audit(request, _chat_audit(principal, label, "unavailable", 503))
            raise ApiError(
                503,
                f"{exc}. Check that the inference server is running"
                " (`ai-suite status`) and that INFERENCE_URL or MODEL_REGISTRY point at it.",
                code="upstream_unavailable",
                headers={"Retry-After": "5"},
            ) from exc
        response = upstream.response
        headers = {"X-Backend": upstream.backend, "X-Model": resolved.alias}
        outcome = "ok" if response.status_code < 400 else "upstream_error"
        content_type = response.headers.get("content-type", "application/json")
        if body.stream and response.status_code == 200:
            await audit(request, _chat_audit(principal, label, "streaming", 200, upstream.backend))
            return StreamingResponse(
                pool.relay(label, upstream),
                status_code=200,
                media_type=content_type,
                headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            content = await response.aread()
        finally:
            await response.aclose()
            pool.finish(label, upstream)
        await audit(
            request,
            _chat_audit(principal, label, outcome, response.status_code, upstream.backend),
        )
        return Response(
            content, status_code=response.status_code, media_type=content_type, headers=headers
        )

    add_forwarding(
        app,
        client,
        {
            "/v1/tools": Target("MCP server", settings.mcp_base_url, "/tools"),
            "/v1/approvals": Target("MCP server", settings.mcp_base_url, "/approvals"),
            "/v1/rag": Target("RAG service", settings.rag_base_url, ""),
        },
    )

    @app.get("/v1/backends")
    async def backends(_: ModelReader) -> JSONResponse:
        return JSONResponse(
            {
                "data": [
                    {
                        "name": b.name,
                        "url": b.url,
                        "circuit": pool.breakers[b.name].state.name.lower(),
                        "retry_after_seconds": round(pool.breakers[b.name].retry_after(), 1),
                    }
                    for b in models.backends
                ]
            }
        )

    return app


def _chat_audit(
    principal: Principal, model: str, outcome: str, status: int, backend: str | None = None
) -> AuditEntry:
    return AuditEntry(
        action="chat:create",
        outcome=outcome,
        user=principal.user,
        user_id=principal.user_id,
        resource=model,
        status=status,
        details={"backend": backend} if backend else {},
    )
