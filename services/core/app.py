"""The skeleton every service's ``create_app(settings)`` starts from."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.core.health import Check, health_endpoint, ready_endpoint
from services.core.limits import LimitMetrics, RequestLimits, RequestLimitsMiddleware
from services.core.metrics import HttpMetrics, metrics_endpoint, new_registry
from services.core.middleware import RequestContextMiddleware

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


@dataclass
class ServiceParts:
    """What ``build_service_app`` hands back to the service that builds on it."""

    app: FastAPI
    registry: CollectorRegistry
    checks: list[Check] = field(default_factory=list)


def build_service_app(
    service: str,
    *,
    version: str = "0.1.0",
    registry: CollectorRegistry | None = None,
    lifespan: Lifespan | None = None,
    limits: RequestLimits | None = None,
) -> ServiceParts:
    """A FastAPI app with request ids, JSON access logs, metrics, probes and request limits
    (body size, JSON depth, body read timeout; the defaults unless ``limits`` is given).

    Readiness checks are appended to ``parts.checks`` by the service.
    """
    registry = registry if registry is not None else new_registry()
    app = FastAPI(title=f"Local AI Suite {service}", version=version, lifespan=lifespan)
    checks: list[Check] = []
    app.add_route("/health", health_endpoint(service), methods=["GET"], include_in_schema=False)
    app.add_route(
        "/ready", ready_endpoint(service, checks), methods=["GET"], include_in_schema=False
    )
    app.add_route("/metrics", metrics_endpoint(registry), methods=["GET"], include_in_schema=False)
    # Added first, so it runs inside RequestContextMiddleware: refusals get a request id,
    # a metric and an access log line like any other answer.
    app.add_middleware(
        RequestLimitsMiddleware,
        limits=limits or RequestLimits(),
        service=service,
        metrics=LimitMetrics(registry, service),
    )
    app.add_middleware(
        RequestContextMiddleware, service=service, router=app.router, metrics=HttpMetrics(registry)
    )
    app.state.registry = registry
    app.state.service = service
    return ServiceParts(app=app, registry=registry, checks=checks)
