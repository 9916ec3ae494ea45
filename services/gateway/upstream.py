"""Forwarding inference requests (chat, completions, embeddings) to backends.

Per request: try each backend of the model in fallback order, skipping those
whose circuit breaker is open; on each backend retry connection errors and
502/503/504 a bounded number of times with exponential backoff (tenacity).
Upstream 4xx answers are the caller's problem and are passed through as is.
What counts against a backend's breaker is decided by :func:`classify_status` for
answers; connection errors, timeouts and broken streams always count.
Responses are always opened in streaming mode, so an SSE stream is relayed
chunk by chunk and never buffered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from services.core.metrics import LATENCY_BUCKETS
from services.gateway.breaker import BreakerState, CircuitBreaker
from services.gateway.inference_client import (
    HttpxInferenceClient,
    InferenceClient,
    UpstreamAnswer,
)
from services.gateway.registry import Backend, ModelRegistry

log = logging.getLogger("ai_suite.gateway.upstream")

RETRYABLE_STATUS = frozenset({502, 503, 504})
MAX_BACKOFF_SECONDS = 2.0
# The upstream refused the gateway's own key (INFERENCE_API_KEY / api_key_env): a
# configuration fault that fails every caller alike; a client cannot provoke it.
UPSTREAM_AUTH_STATUS = frozenset({401, 403})


class Verdict(Enum):
    """What an upstream answer means for the backend's circuit breaker."""

    SUCCESS = "success"  # the backend served the request
    FAULT = "fault"  # the backend (or the gateway's config for it) is broken
    NEUTRAL = "neutral"  # says nothing about the backend's health


def classify_status(status: int) -> Verdict:
    """The breaker verdict for an upstream answer with ``status``.

    * 502/503/504 (the server or a proxy in front of it is down or overloaded; retried
      first) and 401/403 (the gateway's own upstream key, wrong for everyone) are faults.
    * Every other 4xx and 5xx is neutral. 400/404/413/422 are caused by the client's own
      input (a bad body, an unknown model name); 429 is backpressure; a 500 is an answer
      the server chose to give, and local servers give it for bad input too
      (llama-cpp-python does), so a client could provoke it at will; 501 means one
      endpoint is missing (embeddings on a chat-only server). A client must neither be
      able to switch a backend off for everyone with such requests nor keep a failing
      backend's breaker closed with them, so they are no success either. A server that
      has crashed is a connection error, which counts.
    """
    if status in UPSTREAM_AUTH_STATUS or status in RETRYABLE_STATUS:
        return Verdict.FAULT
    if status >= 400:
        return Verdict.NEUTRAL
    return Verdict.SUCCESS


def fault_reason(status: int) -> str:
    """The bounded llm_upstream_errors_total reason of a counted, non-retried answer."""
    # Only 401/403 and 502/503/504 are faults (classify_status): a bounded set.
    return "upstream_auth" if status in UPSTREAM_AUTH_STATUS else f"status_{status}"


# usage field -> llm_tokens_total "kind" label
TOKEN_KINDS = {"prompt_tokens": "prompt", "completion_tokens": "completion"}


class LlmMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "llm_requests_total",
            "Inference requests (chat, completions, embeddings), by model alias, backend and"
            " final status.",
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
            "Failed attempts against a backend, by reason (connect, timeout, status_503, ...).",
            ["backend", "reason"],
            registry=registry,
        )
        self.tokens = Counter(
            "llm_tokens_total",
            "Tokens the backends reported in 'usage', by model alias, backend and kind"
            " (prompt, completion).",
            ["model", "backend", "kind"],
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
    response: UpstreamAnswer
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
        api_keys: Mapping[str, SecretStr] | None = None,
        inference_clients: Mapping[str, InferenceClient] | None = None,
    ) -> None:
        self.registry = registry
        # Inference requests go through a bounded pool per backend (UPSTREAM_MAX_CONNECTIONS)
        # when given; ``client`` serves the rest (/ready probes, discovery), so that long
        # streams can never take every connection those need. A backend without one uses
        # ``client`` (tests that route everything through one transport).
        self._inference_clients = dict(inference_clients or {})
        self._shared = HttpxInferenceClient(client)
        # Keys given in the settings (INFERENCE_API_KEY), by backend name; they win over
        # a backend's api_key_env.
        self._api_keys = dict(api_keys or {})
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
        configured = self._api_keys.get(backend.name)
        key = configured.get_secret_value() if configured else backend.api_key(os.environ)
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def _attempt(self, backend: Backend, path: str, body: dict[str, Any]) -> UpstreamAnswer:
        client = self._inference_clients.get(backend.name, self._shared)
        try:
            response = await client.post(f"{backend.url}{path}", body, self._headers(backend))
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

    async def _counted_attempt(
        self, backend: Backend, path: str, body: dict[str, Any]
    ) -> UpstreamAnswer:
        try:
            return await self._attempt(backend, path, body)
        except _Retryable as exc:
            self.metrics.upstream_errors.labels(backend.name, exc.reason).inc()
            raise

    async def _try_backend(
        self, backend: Backend, path: str, body: dict[str, Any]
    ) -> UpstreamAnswer:
        """The backend's answer, after up to ``retries`` more attempts with exponential
        backoff; the last attempt's _Retryable if none succeeded."""
        try:
            return await self._counted_attempt(backend, path, body)
        except _Retryable:
            if self.retries == 0:
                raise
        # Almost every request succeeds at once: the retry machinery is built only now.
        # Waits as if one AsyncRetrying had made every attempt: backoff x 1, x 2, x 4 ...
        await asyncio.sleep(min(self.backoff_seconds, MAX_BACKOFF_SECONDS))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=2 * self.backoff_seconds, max=MAX_BACKOFF_SECONDS),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        response: UpstreamAnswer = await retrying(self._counted_attempt, backend, path, body)
        return response

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
            except _Retryable as exc:  # every attempt failed
                breaker.record_failure()
                failures[backend.name] = exc.detail
                continue
            except httpx.PoolTimeout:
                # Every connection of the gateway's pool for this backend is in use: load
                # on the gateway, not a fault of the backend, which the breaker must not
                # hear of (a client with many slow streams could otherwise switch it off).
                breaker.record_neutral()
                failures[backend.name] = (
                    "all of the gateway's connections to it are in use"
                    " (UPSTREAM_MAX_CONNECTIONS); retry shortly"
                )
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
            verdict = classify_status(response.status_code)
            if verdict is Verdict.FAULT:
                # Passed on to the client as is.
                breaker.record_failure()
                reason = fault_reason(response.status_code)
                self.metrics.upstream_errors.labels(backend.name, reason).inc()
            elif verdict is Verdict.NEUTRAL:
                breaker.record_neutral()
            else:
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

    def record_usage(self, model_label: str, backend: str, usage: object) -> None:
        """Count the tokens of an OpenAI ``usage`` object; anything malformed is ignored."""
        if not isinstance(usage, dict):
            return
        for field_name, kind in TOKEN_KINDS.items():
            count = usage.get(field_name)
            # bool is an int too; a server sending true must not count as one token.
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                self.metrics.tokens.labels(model_label, backend, kind).inc(count)

    def record_body_usage(self, model_label: str, backend: str, body: bytes) -> None:
        """Count the tokens of a non-streamed JSON answer."""
        try:
            document = json.loads(body)
        except ValueError:
            return
        if isinstance(document, dict):
            self.record_usage(model_label, backend, document.get("usage"))

    async def relay(self, model_label: str, upstream: UpstreamResponse) -> AsyncIterator[bytes]:
        """Yield the upstream body as it arrives, then record metrics and close.

        The stream's ``usage`` (the last SSE event carrying one, sent with
        ``stream_options.include_usage``) is counted once the stream has ended.
        """
        usage = _StreamUsage()
        try:
            async for chunk in upstream.response.aiter_raw():
                usage.feed(chunk)
                yield chunk
            usage.feed(b"\n")
            self.record_usage(model_label, upstream.backend, usage.last)
        except httpx.HTTPError as exc:
            # Only the upstream side raises httpx errors here. A client that goes away
            # mid-stream closes this generator (GeneratorExit at the yield) or cancels
            # its task (CancelledError): neither is an upstream fault nor counted.
            self.metrics.upstream_errors.labels(upstream.backend, "stream_broken").inc()
            self.breakers[upstream.backend].record_failure()
            log.warning("stream from backend %s broke: %s", upstream.backend, exc)
            raise
        finally:
            await upstream.response.aclose()
            self.finish(model_label, upstream)

    def refuse_if_all_open(self, model_label: str, backends: Sequence[Backend]) -> None:
        """Raise NoBackendAvailable, without a network call, if every circuit is open."""
        failures: dict[str, str] = {}
        for backend in backends:
            breaker = self.breakers[backend.name]
            wait = breaker.retry_after()
            if breaker.state is not BreakerState.OPEN or wait <= 0:
                return
            failures[backend.name] = f"circuit open, next try in {wait:.0f}s"
        self.metrics.requests.labels(model_label, "none", "503").inc()
        raise NoBackendAvailable(model_label, failures)

    async def discover_models(self, backend: Backend) -> list[str]:
        """``list_upstream_models`` for model discovery: a connection failure counts
        against the backend's breaker like a failed request does."""
        try:
            return await self.list_upstream_models(backend)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                reason = "connect_timeout"
            elif isinstance(exc, httpx.ConnectError | httpx.RemoteProtocolError):
                reason = "connect"
            else:
                reason = "http_error"
            self.breakers[backend.name].record_failure()
            self.metrics.upstream_errors.labels(backend.name, reason).inc()
            raise

    async def probe(self, backend: Backend, wait: float = 1.5) -> str | None:
        """None if ``backend`` answers ``GET /models``; else why not and what to do."""
        try:
            response = await self.client.get(
                f"{backend.url}/models", headers=self._headers(backend), timeout=wait
            )
            await response.aclose()
        except httpx.HTTPError as exc:
            return (
                f"not reachable at {backend.url} ({type(exc).__name__}); check that the "
                "inference server is running (`ai-suite status`)"
            )
        status = response.status_code
        if status in (401, 403):
            return (
                f"{backend.url} refused GET /models with {status}: check the upstream API key "
                "(INFERENCE_API_KEY, or the backend's api_key_env in MODEL_REGISTRY)"
            )
        if status >= 400:
            return f"{backend.url} answered {status} to GET /models"
        breaker = self.breakers[backend.name]
        if breaker.state is BreakerState.OPEN:
            return f"reachable, but its circuit is open for {breaker.retry_after():.0f}s more"
        return None

    async def list_upstream_models(self, backend: Backend, wait: float = 2.0) -> list[str]:
        response = await self.client.get(
            f"{backend.url}/models", headers=self._headers(backend), timeout=wait
        )
        response.raise_for_status()
        document = response.json()
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, list):
            raise ValueError("no 'data' list in the answer")
        return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]


class _StreamUsage:
    """Finds the last ``usage`` object in an SSE stream without holding the stream.

    Only complete lines that mention "usage" are parsed; vLLM may repeat cumulative
    usage on every chunk, so the last one wins and is counted once.
    """

    def __init__(self) -> None:
        self._partial = b""
        self.last: object = None

    def feed(self, chunk: bytes) -> None:
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > 1 << 20:  # a line this long is not an SSE event we want
            self._partial = b""
        for line in lines:
            if b'"usage"' not in line or not line.startswith(b"data:"):
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("usage"), dict):
                self.last = event["usage"]
