"""The API gateway: OpenAI-compatible routes in front of local inference servers.

``create_app`` only assembles: the registry, the upstream pool, model discovery, the
forwarding proxy, then the route modules in :mod:`services.gateway.routes` and the
forwarding to the other services (:mod:`services.gateway.forward`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from anyio import to_thread
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.core.health import Check
from services.core.http import make_async_client
from services.core.supervision import RestartsCollector, run_dir
from services.gateway.discovery import ModelDiscovery
from services.gateway.forward import Target, add_forwarding
from services.gateway.inference_client import AiohttpInferenceClient, InferenceClient
from services.gateway.proxy import NOT_CONFIGURED, PASSTHROUGH_LABEL, InferenceProxy
from services.gateway.registry import (
    AUTO_MODEL,
    DEFAULT_BACKEND,
    Backend,
    ModelRegistry,
    load_registry,
)
from services.gateway.routes import audit as audit_routes
from services.gateway.routes import chat, completions, embeddings
from services.gateway.routes import models as models_routes
from services.gateway.settings import GatewaySettings
from services.gateway.upstream import LlmMetrics, UpstreamPool
from services.security.audit_archive import (
    ARCHIVE_DIR_NAME,
    ArchiveMetrics,
    AuditArchiver,
    run_periodically,
)
from services.security.bootstrap import secure_service_app
from services.security.db import Database
from services.security.fairness import Fairness, FairnessMetrics, open_fairness_db

SERVICE = "gateway"

__all__ = ["AUTO_MODEL", "NOT_CONFIGURED", "PASSTHROUGH_LABEL", "SERVICE", "create_app"]
log = logging.getLogger("ai_suite.gateway")


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
    url_mode = model_registry is None and settings.model_registry is None
    models = model_registry or load_registry(
        settings.model_registry,
        settings.inference_url,
        chat_model=settings.inference_chat_model,
        code_model=settings.inference_code_model,
    )
    # Inference requests get a bounded pool per backend of their own, apart from `client`
    # (probes, discovery, forwarding), so that a user's long streams can never take the
    # connections /ready and /v1/models need. An injected client serves everything.
    inference_clients: dict[str, InferenceClient] = (
        {}
        if http_client is not None
        else {
            backend.name: AiohttpInferenceClient(
                connect_timeout=settings.upstream_connect_timeout,
                read_timeout=settings.upstream_read_timeout,
                pool_timeout=settings.upstream_pool_timeout,
                max_connections=settings.upstream_max_connections,
            )
            for backend in models.backends
        }
    )
    owns_db = db is None
    database = db or Database(settings.security_db_path)
    fairness_db = open_fairness_db(settings.fairness_db_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The event loop's thread pool (run_in_threadpool) defaults to 40 threads, each with
        # its own SQLite connections and page caches; at 64 clients all 40 were started
        # (benchmarks/bench_soak.py) while the writes they carry wait on one database.
        to_thread.current_default_thread_limiter().total_tokens = settings.threads
        log.info(
            "gateway ready: %d model(s), %d backend(s)",
            len(models.list_models()),
            len(models.backends),
        )
        tasks = [
            asyncio.create_task(fairness.run(), name="fairness-leases"),
            asyncio.create_task(
                run_periodically(archiver, settings.audit_archive_interval_seconds),
                name="audit-archive",
            ),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for owned in inference_clients.values():
                await owned.aclose()
            if owns_client:
                await client.aclose()
            if owns_db:
                database.close()
            fairness_db.close()

    parts, _ = secure_service_app(
        SERVICE,
        database,
        registry=registry,
        lifespan=lifespan,
        limits=settings.request_limits,
    )
    app = parts.app
    # The supervisor of `ai-suite up` is not scraped; its restart counts are, through here.
    parts.registry.register(RestartsCollector(run_dir(settings.data_dir)))
    fairness = Fairness(
        fairness_db,
        SERVICE,
        settings.fairness_limits,
        metrics=FairnessMetrics(parts.registry, SERVICE),
    )
    archiver = AuditArchiver(
        database,
        settings.data_dir / ARCHIVE_DIR_NAME,
        retention_days=settings.audit_retention_days,
        batch_rows=settings.audit_archive_batch_rows,
        metrics=ArchiveMetrics(parts.registry),
    )
    pool = UpstreamPool(
        models,
        client,
        LlmMetrics(parts.registry),
        retries=settings.upstream_retries,
        backoff_seconds=settings.upstream_backoff_seconds,
        failure_threshold=settings.breaker_failure_threshold,
        reset_seconds=settings.breaker_reset_seconds,
        api_keys=_settings_keys(settings, models, url_mode),
        inference_clients=inference_clients,
    )
    discovery = _discovery(settings, models, pool) if url_mode else None
    proxy = InferenceProxy(models, pool, discovery, fairness)
    app.state.settings = settings
    app.state.models = models
    app.state.upstream = pool
    app.state.proxy = proxy
    app.state.fairness = fairness

    app.include_router(models_routes.router(models, pool))
    app.include_router(chat.router(proxy))
    app.include_router(completions.router(proxy))
    app.include_router(embeddings.router(proxy))
    app.include_router(audit_routes.router())
    add_forwarding(
        app,
        client,
        {
            "/v1/tools": Target("MCP server", settings.mcp_base_url, "/tools"),
            "/v1/approvals": Target("MCP server", settings.mcp_base_url, "/approvals"),
            "/v1/rag": Target("RAG service", settings.rag_base_url, ""),
        },
        fairness,
    )
    # Backends are not critical: /ready stays 200 ("degraded") while one is down,
    # since the gateway itself works and answers 503 with what to do.
    parts.checks.extend(_backend_check(pool, backend) for backend in models.backends)
    return app


def _settings_keys(
    settings: GatewaySettings, models: ModelRegistry, url_mode: bool
) -> dict[str, SecretStr]:
    """INFERENCE_API_KEY belongs to the INFERENCE_URL backend only."""
    if url_mode and settings.inference_api_key is not None and models.backends:
        return {DEFAULT_BACKEND: settings.inference_api_key}
    return {}


def _discovery(
    settings: GatewaySettings, models: ModelRegistry, pool: UpstreamPool
) -> ModelDiscovery | None:
    """Discovery of upstream names for the aliases INFERENCE_*_MODEL leaves unpinned."""
    if not models.backends:
        return None
    backend = models.backend(DEFAULT_BACKEND)
    pinned = {"chat": settings.inference_chat_model, "code": settings.inference_code_model}

    async def list_models() -> list[str]:
        return await pool.discover_models(backend)

    return ModelDiscovery(
        backend.url,
        list_models,
        [alias for alias, name in pinned.items() if name is None],
        ttl=settings.inference_models_ttl_seconds,
    )


def _backend_check(pool: UpstreamPool, backend: Backend) -> Check:
    async def reachable() -> str | None:
        return await pool.probe(backend)

    return Check(f"backend:{backend.name}", reachable, critical=False)
