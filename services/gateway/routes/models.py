"""``GET /v1/models`` and ``GET /v1/backends``."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends
from starlette.responses import JSONResponse

from services.gateway.registry import AUTO_MODEL, ModelRegistry
from services.gateway.upstream import UpstreamPool
from services.security.http_auth import requires
from services.security.rbac import Principal

log = logging.getLogger("ai_suite.gateway")

ModelReader = Annotated[Principal, Depends(requires("models:read"))]


def _model(model_id: str, owner: str, kind: str, backends: list[str]) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": 0,
        "owned_by": owner,
        "kind": kind,
        "backends": backends,
    }


def router(models: ModelRegistry, pool: UpstreamPool) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/models")
    async def list_models(_: ModelReader) -> dict[str, Any]:
        entries = models.list_models()
        data = [
            _model(entry.name, "local-ai-suite", str(entry.kind), list(entry.backends))
            for entry in entries
        ]
        if entries:
            data.insert(0, _model(AUTO_MODEL, "local-ai-suite", "auto", []))
        known = {item["id"] for item in data}
        if models.passthrough_backend:
            backend = models.backend(models.passthrough_backend)
            try:
                upstream_ids = await pool.list_upstream_models(backend)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("backend %s did not list its models: %s", backend.name, exc)
                upstream_ids = []
            data.extend(
                _model(mid, backend.name, "passthrough", [backend.name])
                for mid in upstream_ids
                if mid not in known
            )
        return {"object": "list", "data": data}

    @routes.get("/v1/backends")
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

    return routes
