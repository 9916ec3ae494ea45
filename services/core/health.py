"""Liveness and readiness probes.

``/health`` says the process is up. ``/ready`` runs every registered check and
answers 503 naming the dependencies that are not ready. A check registered with
``critical=False`` (a dependency the service can work without, such as one of the
gateway's inference backends) does not make the service unready: when only such
checks fail, ``/ready`` answers 200 with ``status: "degraded"`` and lists them
under ``degraded``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse

# A check returns None when healthy, or raises / returns a reason string when not.
ReadinessCheck = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class Check:
    name: str
    run: ReadinessCheck
    timeout: float = 2.0
    critical: bool = True


async def _run(check: Check) -> tuple[Check, str | None]:
    try:
        reason = await asyncio.wait_for(check.run(), timeout=check.timeout)
    except TimeoutError:
        reason = f"no answer within {check.timeout:g}s"
    except Exception as exc:  # a failed probe is a finding, not a crash
        reason = f"{type(exc).__name__}: {exc}"
    return check, reason


def health_endpoint(service: str):
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": service})

    return health


def ready_endpoint(service: str, checks: list[Check]):
    async def ready(_: Request) -> JSONResponse:
        results = await asyncio.gather(*(_run(check) for check in checks))
        failing = sorted(check.name for check, reason in results if reason and check.critical)
        degraded = sorted(check.name for check, reason in results if reason and not check.critical)
        status = "not ready" if failing else "degraded" if degraded else "ready"
        body: dict[str, object] = {
            "status": status,
            "service": service,
            "checks": {check.name: (reason or "ok") for check, reason in results},
        }
        if failing:
            body["not_ready"] = failing
        if degraded:
            body["degraded"] = degraded
        return JSONResponse(body, status_code=503 if failing else 200)

    return ready
