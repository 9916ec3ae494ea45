"""Wiring the security database into a service app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from services.core.auth import AuthMetrics
from services.core.health import Check
from services.security.audit import AuditLog
from services.security.db import Database
from services.security.migrations import migrate
from services.security.rbac import AccessControl


@dataclass
class Security:
    db: Database
    access: AccessControl
    audit: AuditLog


def open_security(db: Database, registry: CollectorRegistry) -> Security:
    """Apply migrations (every service start does) and build the access layer."""
    migrate(db)
    return Security(db=db, access=AccessControl(db, registry), audit=AuditLog(db, registry))


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
