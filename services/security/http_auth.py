"""FastAPI dependencies that authenticate by API key and check a permission.

Every service uses these, so authentication, RBAC and denial auditing behave
the same everywhere. The access control and audit log live on ``app.state``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from services.core.context import user_var
from services.core.errors import ApiError
from services.security.audit import AuditEntry, AuditLog, AuditWriteError
from services.security.rbac import AccessControl, AuthError, Decision, Principal, parse_bearer

AUTH_FAILURE_REASONS = ("missing", "format", "invalid", "revoked", "expired", "disabled")


class AuthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.failures = Counter(
            "auth_failures_total",
            "Requests refused with 401, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in AUTH_FAILURE_REASONS:  # zero series, so that rate() sees the first one
            self.failures.labels(reason)


def _reason_label(message: str) -> str:
    for label in ("missing", "format", "revoked", "expired", "disabled"):
        if label in message:
            return label
    return "invalid"


async def authenticate(request: Request) -> Principal:
    access: AccessControl = request.app.state.access
    token = parse_bearer(request.headers.get("authorization"))
    try:
        principal = await run_in_threadpool(access.authenticate, token)
    except AuthError as exc:
        request.app.state.auth_metrics.failures.labels(_reason_label(exc.reason)).inc()
        raise ApiError(
            401, exc.reason, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
        ) from None
    request.state.user = principal.user
    request.state.principal = principal
    user_var.set(principal.user)
    return principal


async def audit(request: Request, entry: AuditEntry) -> None:
    """Write an audit entry; if it cannot be stored the request fails with 503."""
    log: AuditLog = request.app.state.audit
    try:
        await run_in_threadpool(log.write, entry)
    except AuditWriteError as exc:
        raise ApiError(
            503,
            f"{exc}. Check that the data directory is writable and the disk is not full.",
            code="audit_unavailable",
        ) from exc


async def authorize(request: Request, principal: Principal, permission: str) -> Decision:
    access: AccessControl = request.app.state.access
    decision = await run_in_threadpool(access.check, principal, permission)
    if not decision.allowed:
        await audit(
            request,
            AuditEntry(
                action=permission,
                outcome="denied",
                user=principal.user,
                user_id=principal.user_id,
                status=403,
                details={"role": principal.role},
            ),
        )
        raise ApiError(
            403,
            f"role {principal.role!r} does not have permission {permission!r}",
            code="permission_denied",
        )
    return decision


def requires(permission: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: the caller's principal, after checking ``permission``."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        await authorize(request, principal, permission)
        return principal

    dependency.__name__ = f"requires_{permission.replace(':', '_')}"
    return dependency
