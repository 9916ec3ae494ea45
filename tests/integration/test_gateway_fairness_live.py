"""Issue 11, "one key starves everyone": a viewer's many slow streams against a live gateway.

Before: one shared connection pool and no per-key limit, so a viewer's slow streams
took the connections every other request (and /ready's probe) needed. Now each key may
hold GATEWAY_MAX_CONCURRENT_PER_KEY requests (the next gets 429), inference requests have
a bounded pool per backend of their own (UPSTREAM_MAX_CONNECTIONS), and control routes
use another client. Real sockets, the stub upstream with slow SSE chunks; the time bounds
are generous timeouts for correctness, not speed assertions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Keys

LONG = " ".join(f"w{i}" for i in range(200))  # 200 chunks, 0.5 s apart: never ends here
PROMPTLY = 10.0  # seconds; a starved request waited for a pool slot for minutes


def body(stream: bool = False) -> dict:
    return {"model": "chat", "messages": [{"role": "user", "content": LONG}], "stream": stream}


def slow_chunks(upstream: str) -> None:
    httpx.post(f"{upstream[: -len('/v1')]}/_stub/config", json={"chunk_delay_seconds": 0.5})


async def sample(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    text = (await client.get("/metrics")).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def open_streams(
    stack: AsyncExitStack, client: httpx.AsyncClient, headers: dict, count: int
) -> list[tuple[httpx.Response, AsyncIterator[bytes]]]:
    """``count`` streams whose headers (200) and first bytes have arrived, left open.

    The iterators are returned too: one that is garbage-collected closes its stream."""
    streams = []
    for _ in range(count):
        response = await stack.enter_async_context(
            client.stream("POST", "/v1/chat/completions", json=body(True), headers=headers)
        )
        assert response.status_code == 200
        chunks = response.aiter_raw()
        await anext(chunks)  # the relay is running
        streams.append((response, chunks))
    return streams


async def test_one_keys_slow_streams_do_not_starve_others(
    stub_upstream: str, start_gateway: Callable[..., str], keys: Keys
) -> None:
    slow_chunks(stub_upstream)
    viewer = {"Authorization": f"Bearer {keys.create('viewer-user', 'viewer')}"}
    developer = {"Authorization": f"Bearer {keys.create('dev-user', 'developer')}"}
    url = start_gateway(inference_url=stub_upstream)  # default limits: 8 per key
    limit = 8
    async with httpx.AsyncClient(base_url=url, timeout=PROMPTLY) as client:
        async with AsyncExitStack() as stack:
            streams = await open_streams(stack, client, viewer, limit)
            refused = await client.post("/v1/chat/completions", json=body(True), headers=viewer)
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            error = refused.json()["error"]
            assert error["code"] == "too_many_concurrent_requests"
            assert "GATEWAY_MAX_CONCURRENT_PER_KEY" in error["message"]
            # Everyone else, and the control routes, answer while the viewer's streams run.
            other = await client.post(
                "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
                headers=developer,
            )
            assert other.status_code == 200
            ready = await client.get("/ready")
            assert (ready.status_code, ready.json()["status"]) == (200, "ready")
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/v1/models", headers=developer)).status_code == 200
            assert await sample(client, "fairness_in_flight", service="gateway") == limit
            assert (
                await sample(client, "rate_limited_total", service="gateway", limit="concurrency")
                == 1
            )
            assert len(streams) == limit
        # The viewer went away in the middle of its streams: every slot is free again.
        for _ in range(500):
            if await sample(client, "fairness_in_flight", service="gateway") == 0:
                break
            await asyncio.sleep(0.02)
        assert await sample(client, "fairness_in_flight", service="gateway") == 0
        async with AsyncExitStack() as stack:
            await open_streams(stack, client, viewer, 1)


async def test_a_full_inference_pool_leaves_control_routes_and_the_breaker_alone(
    stub_upstream: str, start_gateway: Callable[..., str], keys: Keys
) -> None:
    slow_chunks(stub_upstream)
    viewer = {"Authorization": f"Bearer {keys.create('viewer-user', 'viewer')}"}
    developer = {"Authorization": f"Bearer {keys.create('dev-user', 'developer')}"}
    url = start_gateway(
        inference_url=stub_upstream,
        upstream_max_connections=2,
        upstream_pool_timeout=0.3,
        breaker_failure_threshold=2,
    )
    async with httpx.AsyncClient(base_url=url, timeout=PROMPTLY) as client:
        async with AsyncExitStack() as stack:
            streams = await open_streams(stack, client, viewer, 2)  # the pool is full
            for _ in range(3):  # more than the breaker's threshold
                busy = await client.post(
                    "/v1/embeddings", json={"model": "chat", "input": "x"}, headers=developer
                )
                assert busy.status_code == 503
                assert "UPSTREAM_MAX_CONNECTIONS" in busy.json()["error"]["message"]
                assert busy.headers["retry-after"] == "5"
            # /ready probes the backend through the control client: it answers.
            ready = await client.get("/ready")
            assert (ready.status_code, ready.json()["status"]) == (200, "ready")
            assert (await client.get("/v1/models", headers=developer)).status_code == 200
            # A full pool is the gateway's load, not a backend fault: the breaker stays shut.
            assert await sample(client, "llm_circuit_breaker_state") == 0
            assert len(streams) == 2
        for _ in range(500):
            if await sample(client, "fairness_in_flight", service="gateway") == 0:
                break
            await asyncio.sleep(0.02)
        answered = await client.post(
            "/v1/embeddings", json={"model": "chat", "input": "x"}, headers=developer
        )
        assert answered.status_code == 200
