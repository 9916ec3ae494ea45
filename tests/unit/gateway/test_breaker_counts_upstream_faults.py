"""What counts against a backend's circuit breaker (issue 11, finding 3).

Only upstream faults count: connection errors, timeouts, 5xx except 501, and 401/403
(the gateway's own upstream key). Answers a client can provoke with its own input
(400, 404, 413, 422) and backpressure (429) are neutral: no failure, no success, not
retried, no fallback. A client that goes away mid-stream is not an upstream fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.gateway.breaker import BreakerState
from services.gateway.registry import Backend, ModelEntry, ModelRegistry
from services.gateway.selection import ModelKind
from services.gateway.upstream import (
    LlmMetrics,
    NoBackendAvailable,
    UpstreamPool,
    Verdict,
    classify_status,
)
from tests.stubs.inference import create_stub_app
from tests.unit.gateway.conftest import UPSTREAM, Gateway, MakeGateway

SERVED = "stub-model:latest"
HOST = "upstream.test"
THRESHOLD = 3


def stub_state(gateway: Gateway, host: str = HOST):
    return gateway.router.transports[host].app.state.stub  # type: ignore[attr-defined]


def breaker(gateway: Gateway, backend: str = "default"):
    return gateway.app.state.upstream.breakers[backend]


def primary_and_spare() -> ModelRegistry:
    """Two live backends: a request that fell back would reach spare.test."""
    return ModelRegistry(
        backends=[
            Backend(name="primary", url=f"http://{HOST}/v1"),
            Backend(name="spare", url="http://spare.test/v1"),
        ],
        models=[
            ModelEntry(
                name="chat",
                kind=ModelKind.CHAT,
                upstream_model=SERVED,
                backends=["primary", "spare"],
            )
        ],
    )


# --- client-caused 4xx --------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_client_caused_4xx_neither_open_the_breaker_nor_retry_nor_fall_back(
    make_gateway: MakeGateway, status: int
):
    primary, spare = create_stub_app(), create_stub_app()
    gw = await make_gateway(
        {HOST: primary, "spare.test": spare},
        model_registry=primary_and_spare(),
        upstream_retries=2,
        breaker_failure_threshold=THRESHOLD,
    )
    bad = THRESHOLD * 2
    primary.state.stub.config.fail_next = bad
    primary.state.stub.config.fail_status = status
    for _ in range(bad):
        response = await gw.chat(text="malformed")
        assert response.status_code == status  # passed through, as the client caused it
    assert primary.state.stub.stats()["total_requests"] == bad  # one attempt each
    assert spare.state.stub.stats()["total_requests"] == 0  # no fallback
    assert breaker(gw, "primary").state is BreakerState.CLOSED
    assert breaker(gw, "primary").consecutive_failures == 0
    assert await gw.sample("llm_circuit_breaker_state", backend="primary") == 0
    assert await gw.sample("llm_upstream_errors_total") == 0
    other_user = await gw.client.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hello"}]},
        headers=gw.auth("admin"),
    )
    assert other_user.status_code == 200
    assert other_user.headers["X-Backend"] == "primary"


async def test_unknown_passthrough_model_404s_do_not_open_the_breaker(make_gateway: MakeGateway):
    # A real 404 from the stub (the model name is the client's), not an injected one.
    registry = ModelRegistry(
        backends=[Backend(name="default", url=UPSTREAM)],
        models=[ModelEntry(name="chat", upstream_model=SERVED, backends=["default"])],
        passthrough_backend="default",
    )
    gw = await make_gateway(
        {HOST: create_stub_app()},
        model_registry=registry,
        breaker_failure_threshold=THRESHOLD,
    )
    for i in range(THRESHOLD * 2):
        assert (await gw.chat(model=f"no-such-model-{i}")).status_code == 404
    assert breaker(gw).state is BreakerState.CLOSED
    assert (await gw.chat()).status_code == 200


async def test_requests_the_gateway_rejects_never_reach_the_breaker(make_gateway: MakeGateway):
    gw = await make_gateway(
        {HOST: create_stub_app()}, inference_url=UPSTREAM, breaker_failure_threshold=1
    )
    for _ in range(3):
        response = await gw.client.post(
            "/v1/chat/completions", json={"model": "chat"}, headers=gw.auth("viewer")
        )
        assert response.status_code == 422
    assert gw.upstream_requests("/chat/completions") == []
    assert breaker(gw).state is BreakerState.CLOSED
    assert breaker(gw).consecutive_failures == 0


# --- 429: backpressure -------------------------------------------------------------------


async def test_429_passes_through_with_retry_after_and_does_not_open_the_breaker(
    make_gateway: MakeGateway,
):
    busy = FastAPI()
    hits: list[int] = []

    @busy.post("/v1/chat/completions")
    async def chat() -> JSONResponse:
        hits.append(1)
        error = {"message": "too many requests", "type": "rate_limit", "code": "429"}
        return JSONResponse({"error": error}, status_code=429, headers={"Retry-After": "7"})

    gw = await make_gateway(
        {HOST: busy},
        inference_url=UPSTREAM,
        inference_chat_model=SERVED,
        upstream_retries=2,
        breaker_failure_threshold=THRESHOLD,
    )
    for _ in range(THRESHOLD * 2):
        response = await gw.chat()
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.json()["error"]["message"] == "too many requests"
    assert len(hits) == THRESHOLD * 2  # not retried
    assert breaker(gw).state is BreakerState.CLOSED
    assert breaker(gw).consecutive_failures == 0


# --- upstream faults: both sides of the threshold ----------------------------------------


async def _fault_gateway(make_gateway: MakeGateway, fault: str) -> Gateway:
    upstreams = {HOST: create_stub_app()} if fault != "connect" else {}
    gw = await make_gateway(
        upstreams,
        inference_url=UPSTREAM,
        inference_chat_model=SERVED,
        upstream_retries=0,
        breaker_failure_threshold=THRESHOLD,
    )
    if fault != "connect":
        state = stub_state(gw)
        state.config.fail_next = 100
        state.config.fail_status = int(fault)
    return gw


@pytest.mark.parametrize("fault", ["502", "503", "connect"])
async def test_threshold_minus_one_faults_keep_the_breaker_closed(
    make_gateway: MakeGateway, fault: str
):
    gw = await _fault_gateway(make_gateway, fault)
    for _ in range(THRESHOLD - 1):
        assert (await gw.chat()).status_code in (500, 503)
    assert breaker(gw).state is BreakerState.CLOSED
    sent = len(gw.router.sent)
    await gw.chat()  # still forwarded: the circuit is closed
    assert len(gw.router.sent) == sent + 1


@pytest.mark.parametrize("fault", ["502", "503", "connect"])
async def test_threshold_faults_open_the_breaker(make_gateway: MakeGateway, fault: str):
    gw = await _fault_gateway(make_gateway, fault)
    for _ in range(THRESHOLD):
        assert (await gw.chat()).status_code in (500, 503)
    assert breaker(gw).state is BreakerState.OPEN
    assert await gw.sample("llm_circuit_breaker_state", backend="default") == 1
    sent = len(gw.router.sent)
    refused = await gw.chat()
    assert refused.status_code == 503
    assert "circuit open" in refused.json()["error"]["message"]
    assert len(gw.router.sent) == sent


async def test_500s_are_passed_through_and_never_open_the_breaker(make_gateway: MakeGateway):
    # Local servers answer bad input with 500 too (llama-cpp-python does): a client must
    # not be able to switch the backend off for everyone with them.
    gw = await _fault_gateway(make_gateway, "500")
    for _ in range(THRESHOLD + 2):
        assert (await gw.chat()).status_code == 500
    assert await gw.sample("llm_upstream_errors_total") == 0  # no reason at all
    assert breaker(gw).consecutive_failures == 0


async def test_a_wrong_upstream_key_counts_as_a_fault(make_gateway: MakeGateway):
    gw = await make_gateway(
        {HOST: create_stub_app(accept_any_model=True, api_key="right")},
        inference_url=UPSTREAM,
        inference_chat_model=SERVED,
        breaker_failure_threshold=THRESHOLD,
    )
    for _ in range(THRESHOLD):
        response = await gw.chat()
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_auth_failed"
    assert breaker(gw).state is BreakerState.OPEN
    assert await gw.sample("llm_upstream_errors_total", reason="upstream_auth") == THRESHOLD


# --- streams: a client going away is not an upstream fault -------------------------------


async def _open_stream(gw: Gateway):
    pool = gw.app.state.upstream
    body = {"model": SERVED, "messages": [{"role": "user", "content": "one two three"}]}
    upstream = await pool.post(
        "chat",
        pool.registry.backends,
        "/chat/completions",
        {
            **body,
            "stream": True,
        },
    )
    return pool, upstream


class _StillGenerating(httpx.AsyncByteStream):
    """An upstream that sent its first chunk and is still generating the next."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"choices": []}\n\n'
        await asyncio.Event().wait()
        yield b"data: [DONE]\n\n"  # never reached


class _StreamTransport(httpx.AsyncBaseTransport):
    def __init__(self, stream: type[httpx.AsyncByteStream]) -> None:
        self.stream = stream

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, stream=self.stream())


@pytest.mark.parametrize("how", ["close", "cancel"])
async def test_a_client_leaving_mid_stream_is_not_counted(make_gateway: MakeGateway, how: str):
    gw = await make_gateway({}, inference_url=UPSTREAM, breaker_failure_threshold=1)
    gw.router.transports[HOST] = _StreamTransport(_StillGenerating)  # type: ignore[assignment]
    pool, upstream = await _open_stream(gw)
    relay = pool.relay("chat", upstream)
    assert await relay.__anext__()
    if how == "close":  # the server closes the body iterator
        await relay.aclose()
    else:  # the server cancels the response task while it waits for the next chunk

        async def drain() -> None:
            async for _ in relay:
                pass

        task = asyncio.ensure_future(drain())
        await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert upstream.response.is_closed
    assert await gw.sample("llm_upstream_errors_total", reason="stream_broken") == 0
    assert pool.breakers["default"].consecutive_failures == 0
    assert pool.breakers["default"].state is BreakerState.CLOSED


class _BreakingStream(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"choices": []}\n\n'
        raise httpx.ReadError("connection reset by peer")


async def test_an_upstream_breaking_mid_stream_is_counted(make_gateway: MakeGateway):
    gw = await make_gateway({}, inference_url=UPSTREAM, breaker_failure_threshold=1)
    gw.router.transports[HOST] = _StreamTransport(_BreakingStream)  # type: ignore[assignment]
    pool, upstream = await _open_stream(gw)
    with pytest.raises(httpx.ReadError):
        async for _ in pool.relay("chat", upstream):
            pass
    assert await gw.sample("llm_upstream_errors_total", reason="stream_broken") == 1
    assert pool.breakers["default"].state is BreakerState.OPEN


# --- the rule, over random sequences of upstream outcomes --------------------------------

FAULTS = ["502", "503", "504", "401", "403", "connect", "timeout"]
NEUTRALS = ["400", "404", "413", "422", "429", "500", "501"]
OUTCOMES = [*FAULTS, *NEUTRALS, "200"]


def test_classify_status_table():
    assert {s: classify_status(int(s)) for s in FAULTS if s.isdigit()} == {
        s: Verdict.FAULT for s in FAULTS if s.isdigit()
    }
    assert {s: classify_status(int(s)) for s in NEUTRALS} == {s: Verdict.NEUTRAL for s in NEUTRALS}
    assert classify_status(200) is Verdict.SUCCESS


async def _replay(outcomes: list[str], threshold: int) -> tuple[BreakerState, int]:
    queue = list(outcomes)

    def answer(request: httpx.Request) -> httpx.Response:
        outcome = queue.pop(0)
        if outcome == "connect":
            raise httpx.ConnectError("refused", request=request)
        if outcome == "timeout":
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(int(outcome), json={})

    backend = Backend(name="only", url="http://only.test/v1")
    registry = ModelRegistry(
        backends=[backend],
        models=[ModelEntry(name="m", upstream_model="m", backends=["only"])],
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        pool = UpstreamPool(
            registry,
            client,
            LlmMetrics(CollectorRegistry()),
            retries=0,
            failure_threshold=threshold,
            reset_seconds=3600,
        )
        for _ in outcomes:
            try:
                upstream = await pool.post("m", [backend], "/chat/completions", {"model": "m"})
            except NoBackendAvailable:  # a fault that took the only backend: next outcome
                continue
            await upstream.response.aclose()
        return pool.breakers["only"].state, len(outcomes) - len(queue)


@given(
    outcomes=st.lists(st.sampled_from(OUTCOMES), max_size=25),
    threshold=st.integers(min_value=1, max_value=5),
)
def test_the_breaker_opens_iff_threshold_consecutive_faults(outcomes: list[str], threshold: int):
    # Neutral answers are skipped; a success resets the run; once open (the reset time
    # never elapses here) no request reaches the backend.
    run, opened_after = 0, None
    for index, outcome in enumerate(outcomes):
        if outcome in FAULTS:
            run += 1
            if run >= threshold:
                opened_after = index + 1
                break
        elif outcome == "200":
            run = 0
    state, sent = asyncio.run(_replay(outcomes, threshold))
    if opened_after is None:
        assert state is not BreakerState.OPEN
        assert sent == len(outcomes)
    else:
        assert state is BreakerState.OPEN
        assert sent == opened_after
