"""Forwarding chat completions to inference backends.

Per request: try each backend of the model in fallback order, skipping those
whose circuit breaker is open; on each backend retry connection errors and
502/503/504 a bounded number of times with exponential backoff (tenacity).
Upstream 4xx answers are the caller's problem and are passed through as is.
Responses are always opened in streaming mode, so an SSE stream is relayed
chunk by chunk and never buffered.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from services.core.metrics import LATENCY_BUCKETS
from services.gateway.breaker import BreakerState, CircuitBreaker
from services.gateway.registry import Backend, ModelRegistry

log = logging.getLogger("ai_suite.gateway.upstream")

RETRYABLE_STATUS = frozenset({502, 503, 504})


class LlmMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "llm_requests_total",
            "Chat completion requests, by model alias, backend and final status.",
            ["model", "backend", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "llm_request_duration_seconds",
            "Time from forwarding a request until its last byte was relayed.",
            ["model", "backend"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "llm_upstream_errors_total",
            "Failed attempts against a backend, by reason (connect, timeout, status_5xx, ...).",
            ["backend", "reason"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "llm_circuit_breaker_state",
            "Circuit breaker state per backend: 0 closed, 1 open, 2 half-open.",
            ["backend"],
            registry=registry,
        )


class _Retryable(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class NoBackendAvailable(Exception):
    """Every backend of the model failed or is switched off by its breaker."""

    def __init__(self, model: str, failures: dict[str, str]) -> None:
        self.model = model
        self.failures = failures
        detail = "; ".join(f"{name}: {why}" for name, why in failures.items()) or "none configured"
        super().__init__(f"no inference backend available for model {model!r} ({detail})")


@dataclass
class UpstreamResponse:
    backend: str
    response: httpx.Response
    started: float = field(default_factory=time.perf_counter)


class UpstreamPool:
    def __init__(
        self,
        registry: ModelRegistry,
        client: httpx.AsyncClient,
        metrics: LlmMetrics,
        *,
        retries: int = 2,
        backoff_seconds: float = 0.2,
        failure_threshold: int = 5,
        reset_seconds: float = 30.0,
    ) -> None:
        self.registry = registry
        self.client = client
        self.metrics = metrics
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.breakers: dict[str, CircuitBreaker] = {}
        for backend in registry.backends:
            self.breakers[backend.name] = CircuitBreaker(
                backend.name,
                failure_threshold=failure_threshold,
                reset_timeout=reset_seconds,
                on_change=self._breaker_changed,
            )
            metrics.breaker_state.labels(backend.name).set(BreakerState.CLOSED)

    def _breaker_changed(self, backend: str, state: BreakerState) -> None:
        self.metrics.breaker_state.labels(backend).set(int(state))
        log.warning("circuit breaker for backend %s is now %s", backend, state.name.lower())

    def _headers(self, backend: Backend) -> dict[str, str]:
        key = backend.api_key(os.environ)
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def _attempt(self, backend: Backend, path: str, body: dict[str, Any]) -> httpx.Response:
        request = self.client.build_request(
            "POST", f"{backend.url}{path}", json=body, headers=self._headers(backend)
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.ConnectTimeout as exc:
            raise _Retryable("connect_timeout", f"connect timeout ({exc})") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
            raise _Retryable("connect", f"cannot connect to {backend.url} ({exc})") from exc
        if response.status_code in RETRYABLE_STATUS:
            await response.aclose()
            raise _Retryable(
                f"status_{response.status_code}", f"upstream answered {response.status_code}"
            )
        return response

    async def _try_backend(
        self, backend: Backend, path: str, body: dict[str, Any]
    ) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff_seconds, max=2.0),
            retry=retry_if_exception_type(_Retryable),
            reraise=False,
        )

        async def counted() -> httpx.Response:
            try:
                return await self._attempt(backend, path, body)
            except _Retryable as exc:
                self.metrics.upstream_errors.labels(backend.name, exc.reason).inc()
                raise

        return await retrying(counted)

    async def post(
        self, model_label: str, backends: Sequence[Backend], path: str, body: dict[str, Any]
    ) -> UpstreamResponse:
        """Open a response from the first backend that answers; raise NoBackendAvailable."""
        failures: dict[str, str] = {}
        for backend in backends:
            breaker = self.breakers[backend.name]
            if not breaker.allow_request():
                failures[backend.name] = f"circuit open, next try in {breaker.retry_after():.0f}s"
                continue
            started = time.perf_counter()
            try:
                response = await self._try_backend(backend, path, body)
            except RetryError as exc:
                breaker.record_failure()
                last = exc.last_attempt.exception()
                failures[backend.name] = getattr(last, "detail", str(last))
                continue
            except httpx.TimeoutException as exc:
                # A read timeout: the model may still be generating, so retrying
                # here would double the load. Count it and move on.
                breaker.record_failure()
                self.metrics.upstream_errors.labels(backend.name, "read_timeout").inc()
                failures[backend.name] = f"no answer in time ({type(exc).__name__})"
                continue
            except httpx.HTTPError as exc:
                breaker.record_failure()
                self.metrics.upstream_errors.labels(backend.name, "http_error").inc()
                failures[backend.name] = f"{type(exc).__name__}: {exc}"
                continue
            breaker.record_success()
            return UpstreamResponse(backend.name, response, started)
        self.metrics.requests.labels(model_label, "none", "503").inc()
        raise NoBackendAvailable(model_label, failures)

    def finish(self, model_label: str, upstream: UpstreamResponse) -> None:
        status = str(upstream.response.status_code)
        self.metrics.requests.labels(model_label, upstream.backend, status).inc()
        self.metrics.duration.labels(model_label, upstream.backend).observe(
            time.perf_counter() - upstream.started
        )

    async def relay(self, model_label: str, upstream: UpstreamResponse) -> AsyncIterator[bytes]:
        """Yield the upstream body as it arrives, then record metrics and close."""
        try:
            async for chunk in upstream.response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            self.metrics.upstream_errors.labels(upstream.backend, "stream_broken").inc()
            log.warning("stream from backend %s broke: %s", upstream.backend, exc)
            raise
        finally:
            await upstream.response.aclose()
            self.finish(model_label, upstream)

    async def list_upstream_models(self, backend: Backend, wait: float = 2.0) -> list[str]:
        response = await self.client.get(
            f"{backend.url}/models", headers=self._headers(backend), timeout=wait
        )
        response.raise_for_status()
        data = response.json().get("data", [])
        return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]
