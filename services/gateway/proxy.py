"""The one forwarding path of the inference routes (chat, completions, embeddings).

Per request: resolve the model name (alias, ``auto`` or passthrough) -> map it to the
name the upstream serves -> send it to the first backend that answers (retries,
fallback and breaker in :class:`UpstreamPool`) -> relay the answer -> count requests,
duration and tokens -> write the audit entry. Authentication and the permission check
happen before, in each route's ``requires(...)`` dependency.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from services.core.errors import ApiError
from services.gateway.discovery import ModelDiscovery
from services.gateway.registry import AUTO_MODEL, ModelRegistry, ResolvedModel
from services.gateway.selection import ModelKind
from services.gateway.upstream import NoBackendAvailable, UpstreamPool, UpstreamResponse
from services.security.audit import AuditEntry
from services.security.fairness import Fairness, FairnessUnavailable, Lease, LimitExceeded
from services.security.http_auth import audit
from services.security.rbac import Principal

log = logging.getLogger("ai_suite.gateway.proxy")

PASSTHROUGH_LABEL = "<passthrough>"  # unknown names must not become metric labels


def header_value(text: str) -> str:
    """``text`` as a valid HTTP header value: visible ASCII as is, the rest %-encoded (UTF-8).

    Model names are free text (``"한국어-모델"``, spaces, control characters); a response
    header must be Latin-1 and without control characters or edge spaces, or the server
    fails the whole response with a 500. ``%`` is encoded too, so the value decodes
    unambiguously with ``urllib.parse.unquote``.
    """
    return "".join(c if "!" <= c <= "~" and c != "%" else quote(c, safe="") for c in text)


NOT_CONFIGURED = (
    "no inference backend is configured: set INFERENCE_URL to an OpenAI-compatible base URL "
    "(for example INFERENCE_URL=http://127.0.0.1:8001/v1 for llama.cpp, "
    "http://127.0.0.1:11434/v1 for Ollama) or MODEL_REGISTRY to a model registry YAML file, "
    "then restart the gateway"
)


@dataclass(frozen=True)
class Operation:
    """One OpenAI endpoint the gateway forwards."""

    api: str  # "chat.completions", "completions", "embeddings": audit details
    permission: str  # checked by the route; also the audit action
    path: str  # upstream path after the base URL, e.g. "/chat/completions"


CHAT = Operation("chat.completions", "chat:create", "/chat/completions")
# The legacy completions API generates text with the same models as chat, so the
# chat permission covers it (docs/gateway.md).
COMPLETIONS = Operation("completions", "chat:create", "/completions")
EMBEDDINGS = Operation("embeddings", "embeddings:create", "/embeddings")

# Classifies the request for model "auto"; None: "auto" is refused for this operation.
AutoKind = Callable[[], ModelKind] | None


class InferenceProxy:
    def __init__(
        self,
        models: ModelRegistry,
        pool: UpstreamPool,
        discovery: ModelDiscovery | None = None,
        fairness: Fairness | None = None,
    ) -> None:
        self.models = models
        self.pool = pool
        self.discovery = discovery
        # Per-key rate and concurrency limits; None only where a test builds a proxy bare.
        self.fairness = fairness

    def resolve(self, requested: str, auto_kind: AutoKind) -> ResolvedModel:
        """Where ``requested`` goes; ApiError (503 / 400 / 404) saying what to do."""
        models = self.models
        if not models.backends:
            raise ApiError(503, NOT_CONFIGURED, code="no_backend_configured")
        if requested == AUTO_MODEL:
            if auto_kind is None:
                raise ApiError(
                    400,
                    "model 'auto' chooses between the chat and code models for generating "
                    "text; name the model to use here (see GET /v1/models)",
                    code="model_auto_not_supported",
                    param="model",
                )
            kind = auto_kind()
            resolved = models.resolve_auto(kind)
            if resolved is None:
                raise ApiError(
                    404,
                    f"model 'auto' chose a {kind} model, but the registry has none of that kind",
                    code="model_not_found",
                    param="model",
                )
            return resolved
        resolved = models.resolve(requested)
        if resolved is None:
            names = ", ".join([AUTO_MODEL, *(m.name for m in models.list_models())])
            raise ApiError(
                404,
                f"model {requested!r} is not in the registry; available: {names}",
                code="model_not_found",
                param="model",
            )
        return resolved

    async def upstream_name(self, resolved: ResolvedModel) -> str:
        if self._discovered(resolved):
            assert self.discovery is not None  # for mypy: _discovered checked it
            return await self.discovery.upstream_name(resolved.alias)
        return resolved.upstream_model

    def _discovered(self, resolved: ResolvedModel) -> bool:
        return (
            self.discovery is not None
            and not resolved.passthrough
            and self.discovery.discovers(resolved.alias)
        )

    async def forward(
        self,
        request: Request,
        principal: Principal,
        operation: Operation,
        payload: dict[str, Any],
        *,
        stream: bool = False,
        auto_kind: AutoKind = None,
    ) -> Response:
        """Forward ``payload`` (the client's body) and relay the upstream's answer.

        The caller's key must first pass the per-key limits (429 otherwise); its
        concurrency lease is held until the answer has been relayed, for a stream until
        the stream ends, however it ends.
        """
        fairness = self.fairness
        if fairness is None:
            return await self._forward(
                request, principal, operation, payload, stream=stream, auto_kind=auto_kind
            )
        lease = await admit(fairness, principal)
        try:
            response = await self._forward(
                request, principal, operation, payload, stream=stream, auto_kind=auto_kind
            )
        except BaseException:
            await fairness.release(lease)
            raise
        if isinstance(response, StreamingResponse):
            return ReleasingResponse(response, lambda: fairness.release(lease))
        await fairness.release(lease)
        return response

    async def _forward(
        self,
        request: Request,
        principal: Principal,
        operation: Operation,
        payload: dict[str, Any],
        *,
        stream: bool,
        auto_kind: AutoKind,
    ) -> Response:
        resolved = self.resolve(str(payload["model"]), auto_kind)
        label = PASSTHROUGH_LABEL if resolved.passthrough else resolved.alias

        async def fail(outcome: str, status: int, backend: str | None = None) -> None:
            await audit(request, _entry(principal, operation, label, outcome, status, backend))

        try:
            if self._discovered(resolved):
                # Discovery would otherwise call a backend the breaker has switched off.
                self.pool.refuse_if_all_open(label, resolved.backends)
            payload["model"] = await self.upstream_name(resolved)
            upstream = await self._post(label, resolved, operation, payload)
        except ApiError as exc:  # discovery failed: nothing was forwarded
            self.pool.metrics.requests.labels(label, "none", str(exc.status)).inc()
            await fail("unavailable", exc.status)
            raise
        except NoBackendAvailable as exc:
            await fail("unavailable", 503)
            raise ApiError(
                503,
                f"{exc}. Check that the inference server is running"
                " (`ai-suite status`) and that INFERENCE_URL or MODEL_REGISTRY point at it.",
                code="upstream_unavailable",
                headers={"Retry-After": "5"},
            ) from exc

        response = upstream.response
        if response.status_code in (401, 403):
            # The gateway's credentials, not the caller's: passing the 401 on would tell
            # the client its own key is wrong.
            await response.aclose()
            self.pool.finish(label, upstream)
            await fail("upstream_error", 502, upstream.backend)
            raise ApiError(
                502,
                f"the inference backend {upstream.backend!r} refused the gateway's request "
                f"with {response.status_code}: set INFERENCE_API_KEY (or the backend's "
                "api_key_env in MODEL_REGISTRY) to the key that server expects, then restart "
                "the gateway",
                code="upstream_auth_failed",
            )
        headers = {
            "X-Backend": header_value(upstream.backend),
            "X-Model": header_value(resolved.alias),
        }
        retry_after = response.headers.get("retry-after")
        if retry_after is not None:
            # A 429 (or 503) is the upstream's backpressure: tell the client when to retry.
            headers["Retry-After"] = header_value(retry_after)
        content_type = response.headers.get("content-type", "application/json")
        if stream and response.status_code == 200:
            await audit(
                request, _entry(principal, operation, label, "streaming", 200, upstream.backend)
            )
            return StreamingResponse(
                self.pool.relay(label, upstream),
                status_code=200,
                media_type=content_type,
                headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            content = await response.aread()
        finally:
            await response.aclose()
            self.pool.finish(label, upstream)
        if response.status_code == 200:
            self.pool.record_body_usage(label, upstream.backend, content)
        outcome = "ok" if response.status_code < 400 else "upstream_error"
        await audit(
            request,
            _entry(principal, operation, label, outcome, response.status_code, upstream.backend),
        )
        return Response(
            content, status_code=response.status_code, media_type=content_type, headers=headers
        )

    async def _post(
        self,
        label: str,
        resolved: ResolvedModel,
        operation: Operation,
        payload: dict[str, Any],
    ) -> UpstreamResponse:
        upstream = await self.pool.post(label, resolved.backends, operation.path, payload)
        if upstream.response.status_code != 404 or not self._discovered(resolved):
            return upstream
        # The discovered name is gone (model unloaded or replaced): discover again and,
        # if the server now lists another first model, retry once with it.
        assert self.discovery is not None  # for mypy: _discovered checked it
        stale = payload["model"]
        self.discovery.forget()
        try:
            fresh = await self.discovery.upstream_name(resolved.alias)
        except ApiError:
            await upstream.response.aclose()
            raise
        if fresh == stale:
            return upstream
        await upstream.response.aclose()
        log.warning(
            "backend %s no longer serves %r; %r is now mapped to %r",
            upstream.backend,
            stale,
            resolved.alias,
            fresh,
        )
        payload["model"] = fresh
        return await self.pool.post(label, resolved.backends, operation.path, payload)


async def admit(fairness: Fairness, principal: Principal) -> Lease | None:
    """The caller's per-key limits (GATEWAY_RATE_LIMIT_PER_MINUTE and
    GATEWAY_MAX_CONCURRENT_PER_KEY): a lease to release, or ApiError 429."""
    try:
        return await fairness.admit(str(principal.user_id))
    except (LimitExceeded, FairnessUnavailable) as exc:
        raise exc.api_error() from None


class ReleasingResponse(Response):
    """Sends ``inner``, then awaits ``release`` however the sending ends.

    Starlette calls every response a route returns, also when the client has gone
    away already, and cancels it when the client goes away mid-stream; ``finally``
    runs in both cases, so a stream's concurrency lease cannot outlive the stream.
    """

    def __init__(self, inner: Response, release: Callable[[], Awaitable[None]]) -> None:
        # Not Response.__init__: there is no body of its own to render.
        self.inner = inner
        self.release = release
        self.status_code = inner.status_code
        self.raw_headers = inner.raw_headers

    # FastAPI hands a route's BackgroundTasks to the response it returns: they must reach
    # the response that runs them.
    @property  # type: ignore[override]
    def background(self) -> BackgroundTask | None:
        return self.inner.background

    @background.setter
    def background(self, value: BackgroundTask | None) -> None:
        self.inner.background = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            await self.release()


def _entry(
    principal: Principal,
    operation: Operation,
    model: str,
    outcome: str,
    status: int,
    backend: str | None = None,
) -> AuditEntry:
    details: dict[str, Any] = {"api": operation.api}
    if backend:
        details["backend"] = backend
    return AuditEntry(
        action=operation.permission,
        outcome=outcome,
        user=principal.user,
        user_id=principal.user_id,
        resource=model,
        status=status,
        details=details,
    )
