"""The MCP tool server: MCP at ``/mcp`` plus the REST facade, over one pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.core.health import Check
from services.core.http import make_async_client
from services.mcp.approvals import ApprovalMetrics, ApprovalStore, ApprovalSweeper
from services.mcp.box import Box
from services.mcp.notify import build_notifier
from services.mcp.pipeline import ToolMetrics, ToolPipeline
from services.mcp.protocol import McpProtocol
from services.mcp.rest import approvals_router, tools_router
from services.mcp.sandbox import Workspace
from services.mcp.settings import McpSettings
from services.mcp.tools import build_tools
from services.security.bootstrap import secure_service_app
from services.security.db import Database
from services.security.fairness import Fairness, FairnessMetrics, open_fairness_db

SERVICE = "mcp"
log = logging.getLogger("ai_suite.mcp")


def create_app(
    settings: McpSettings,
    *,
    http_client: httpx.AsyncClient | None = None,
    db: Database | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """Build the MCP server. Everything it uses is passed in or built here, never global."""
    owns_client = http_client is None
    client = http_client or make_async_client(read_timeout=60.0)
    owns_db = db is None
    database = db or Database(settings.security_db_path)
    workspace = Workspace(settings.workspace_roots)
    box = Box(settings)
    fairness_db = open_fairness_db(settings.fairness_db_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Probed once per process (cached): run_command is refused without a box, and
        # an operator should learn that from the log, not from the first refused call.
        unboxed = await asyncio.to_thread(box.unavailable_reason)
        if unboxed:
            log.error("run_command will be refused: %s", unboxed)
        sweeper_task = asyncio.create_task(sweeper.run(), name="approval-sweeper")
        leases_task = asyncio.create_task(fairness.run(), name="fairness-leases")
        try:
            async with protocol.session_manager.run():
                log.info(
                    "mcp ready: %d tools, workspace roots %s",
                    len(pipeline.tools),
                    ", ".join(str(root) for root in workspace.roots),
                )
                yield
        finally:
            for task in (sweeper_task, leases_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            fairness_db.close()
            if notifier is not None:
                await asyncio.to_thread(notifier.close)
            if owns_client:
                await client.aclose()
            if owns_db:
                database.close()

    parts, security = secure_service_app(
        SERVICE,
        database,
        registry=registry,
        lifespan=lifespan,
        limits=settings.request_limits,
    )
    app = parts.app
    parts.checks.append(_sandbox_check(box))
    notifier = build_notifier(settings, parts.registry)
    approvals = ApprovalStore(
        database,
        security.audit,
        ApprovalMetrics(parts.registry, database),
        ttl_seconds=settings.approval_ttl_seconds,
        on_created=notifier.submit if notifier else None,
    )
    sweeper = ApprovalSweeper(
        approvals, min(settings.approval_sweep_seconds, settings.approval_ttl_seconds)
    )
    fairness = Fairness(
        fairness_db,
        SERVICE,
        settings.fairness_limits,
        metrics=FairnessMetrics(parts.registry, SERVICE),
    )
    pipeline = ToolPipeline(
        settings=settings,
        tools=build_tools(),
        access=security.access,
        audit=security.audit,
        approvals=approvals,
        workspace=workspace,
        http_client=client,
        metrics=ToolMetrics(parts.registry),
        fairness=fairness,
        started=time.monotonic(),
    )
    protocol = McpProtocol(pipeline, security.access, app.state.auth_metrics, settings.host)
    app.include_router(tools_router(pipeline))
    app.include_router(
        approvals_router(approvals, allow_self_approval=settings.allow_self_approval)
    )
    app.add_route("/mcp", protocol.asgi_app, include_in_schema=False)
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.approvals = approvals
    app.state.sweeper = sweeper
    app.state.workspace = workspace
    return app


def _sandbox_check(box: Box) -> Check:
    """Not critical: every other tool works without a box; /ready says "degraded" and why."""

    async def sandbox_ready() -> str | None:
        return await asyncio.to_thread(box.unavailable_reason)

    # The first probe starts bwrap once (then cached): allow it more than the default 2 s.
    return Check("command_sandbox", sandbox_ready, timeout=20.0, critical=False)
