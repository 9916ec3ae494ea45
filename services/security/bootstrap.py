"""Wiring the security database into a service app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from services.core.app import Lifespan, ServiceParts, build_service_app
from services.core.errors import install_error_handlers
from services.core.health import Check
from services.core.limits import RequestLimits
from services.security.audit import AuditLog
from services.security.db import Database
from services.security.http_auth import AuthMetrics
from services.security.migrations import migrate
from services.security.rbac import AccessControl


@dataclass
class Security:
    db: Database
    access: AccessControl
    audit: AuditLog


def secure_service_app(
    service: str,
    database: Database,
    *,
    registry: CollectorRegistry | None = None,
    lifespan: Lifespan | None = None,
    limits: RequestLimits | None = None,
) -> tuple[ServiceParts, Security]:
    """The common start of every service's ``create_app``: the core app, OpenAI-shaped
    errors, the migrated security database on ``app.state`` and its readiness check."""
    parts = build_service_app(service, registry=registry, lifespan=lifespan, limits=limits)
    install_error_handlers(parts.app)
    security = open_security(database, parts.registry, service=service)
    parts.checks.append(install_security(parts.app, security, parts.registry))
    return parts, security


def open_security(db: Database, registry: CollectorRegistry, *, service: str = "") -> Security:
    """Apply migrations (every service start does), build the access layer, and close
    the audited calls of processes that died (``interrupted``) before serving."""
    migrate(db)
    audit = AuditLog(db, registry, service=service)
    audit.recover_interrupted()
    return Security(db=db, access=AccessControl(db, registry), audit=audit)


def install_security(app: FastAPI, security: Security, registry: CollectorRegistry) -> Check:
    """Put the security objects on ``app.state``; returns the database readiness check."""
    app.state.db = security.db
    app.state.access = security.access
    app.state.audit = security.audit
    app.state.auth_metrics = AuthMetrics(registry)

    async def database_ready() -> str | None:
        def probe() -> None:
            security.db.query_one("SELECT 1 FROM schema_migrations LIMIT 1")

        await run_in_threadpool(probe)
        return None

    return Check("security_database", database_ready)
