"""FastAPI dependencies that authenticate by API key and check a permission.

Every service uses these, so authentication, RBAC and denial auditing behave
the same everywhere. The access control and audit log live on ``app.state``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, NoReturn

from prometheus_client import CollectorRegistry, Counter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from services.core.context import user_var
from services.core.errors import ApiError
from services.security.audit import STARTED, AuditEntry, AuditLog, AuditWriteError
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
        # From the cache on the event loop when it is current; a thread only on a miss.
        principal = access.cached_authenticate(token)
        if principal is None:
            principal = await run_in_threadpool(access.authenticate, token)
    except AuthError as exc:
        raise _unauthorized(request, exc) from None
    _signed_in(request, principal)
    return principal


def _unauthorized(request: Request, exc: AuthError) -> ApiError:
    request.app.state.auth_metrics.failures.labels(_reason_label(exc.reason)).inc()
    return ApiError(401, exc.reason, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def _signed_in(request: Request, principal: Principal) -> None:
    request.state.user = principal.user
    request.state.principal = principal
    user_var.set(principal.user)


async def _stored(request: Request, write: Callable[[AuditLog], Awaitable[Any]]) -> None:
    log: AuditLog = request.app.state.audit
    try:
        await write(log)
    except AuditWriteError as exc:
        raise ApiError(
            503,
            f"{exc}. Check that the data directory is writable and the disk is not full.",
            code="audit_unavailable",
        ) from exc


async def audit(request: Request, entry: AuditEntry) -> None:
    """Write an audit entry; if it cannot be stored the request fails with 503.

    The row is committed by the process's audit writer (group commit) before this
    returns; the event loop is free while it waits."""
    await _stored(request, lambda log: log.awrite(entry))


@asynccontextmanager
async def audited_work(request: Request, entry: AuditEntry) -> AsyncIterator[AuditEntry]:
    """Work outside the security database (a Qdrant change) that must stay on record
    after a ``kill -9``: an intent row (outcome ``started``) before it starts, ``entry``
    as the outcome row after it, linked by ``call_id``.

    The body may add to the yielded entry's details (counts known only afterwards). An
    exception records the outcome ``error`` (``cancelled`` for a cancellation) with its
    status and propagates. No intent row, no work: a failed intent write is a 503 before
    the body runs. A process that dies in the body leaves the call open; the next
    service start closes it as ``interrupted`` (``AuditLog.recover_interrupted``).
    """
    outcome = replace(entry, call_id="call_" + uuid.uuid4().hex, details=dict(entry.details))
    intent = replace(outcome, outcome=STARTED, status=None, duration_ms=None)

    async def begin(log: AuditLog) -> None:
        await log.acommit(lambda tx: tx.begin_call(intent, log.owner))

    def end(final: AuditEntry) -> Callable[[AuditLog], Awaitable[Any]]:
        return lambda log: log.acommit(lambda tx: tx.end_call(final))

    await _stored(request, begin)
    started = time.perf_counter()
    try:
        yield outcome
    except BaseException as exc:
        cancelled = isinstance(exc, asyncio.CancelledError)
        failed = replace(
            outcome,
            outcome="cancelled" if cancelled else "error",
            status=exc.status if isinstance(exc, ApiError) else (499 if cancelled else 500),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            details={**outcome.details, "error": getattr(exc, "code", None) or type(exc).__name__},
        )
        # Shielded: a second cancellation must not stop the outcome row half-way.
        await asyncio.shield(_stored(request, end(failed)))
        raise
    outcome.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    await _stored(request, end(outcome))


async def authorize(request: Request, principal: Principal, permission: str) -> Decision:
    access: AccessControl = request.app.state.access
    decision = access.cached_check(principal, permission)
    if decision is None:
        decision = await run_in_threadpool(access.check, principal, permission)
    if not decision.allowed:
        await _refuse(request, principal, permission)
    return decision


async def _refuse(request: Request, principal: Principal, permission: str) -> NoReturn:
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


def requires(permission: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: the caller's principal, after checking ``permission``.

    A key and grants already cached are checked on the event loop in one step (one look
    at ``data_version``); anything else goes through ``authenticate``/``authorize``.
    """

    async def dependency(request: Request) -> Principal:
        access: AccessControl = request.app.state.access
        token = parse_bearer(request.headers.get("authorization"))
        try:
            cached = access.cached_authorize(token, permission)
        except AuthError as exc:
            raise _unauthorized(request, exc) from None
        if cached is None:
            principal = await authenticate(request)
            await authorize(request, principal, permission)
            return principal
        principal, decision = cached
        _signed_in(request, principal)
        if not decision.allowed:
            await _refuse(request, principal, permission)
        return principal

    dependency.__name__ = f"requires_{permission.replace(':', '_')}"
    return dependency
