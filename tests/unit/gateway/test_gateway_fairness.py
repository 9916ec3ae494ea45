"""Per-key rate and concurrency limits on the gateway's inference and forwarded routes.

The starvation scenario over real sockets (many slow streams of one key, a full
inference pool): tests/integration/test_gateway_fairness_live.py.
"""

from __future__ import annotations

import asyncio

import httpx

from tests.stubs.inference import create_stub_app
from tests.unit.gateway.conftest import UPSTREAM, Gateway, MakeGateway

HOST = "upstream.test"
LONG = " ".join(f"w{i}" for i in range(40))  # 40+ SSE chunks


async def slow_stub(chunk_delay: float) -> object:
    app = create_stub_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://stub"
    ) as client:
        await client.post("/_stub/config", json={"chunk_delay_seconds": chunk_delay})
    return app


async def wait_in_flight(gw: Gateway, expected: float) -> None:
    for _ in range(500):
        if await gw.sample("fairness_in_flight", service="gateway") == expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fairness_in_flight never reached {expected}")


def assert_429(response: httpx.Response, code: str, setting: str) -> None:
    assert response.status_code == 429
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", code)
    assert setting in error["message"]
    assert int(response.headers["retry-after"]) >= 1


async def test_rate_limit_answers_429_with_retry_after_per_key(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(
        {HOST: create_stub_app()}, inference_url=UPSTREAM, rate_limit_per_minute=2
    )
    assert (await gw.chat()).status_code == 200
    assert (await gw.embed()).status_code == 200
    limited = await gw.complete()
    assert_429(limited, "rate_limited", "GATEWAY_RATE_LIMIT_PER_MINUTE")
    assert limited.headers["retry-after"] == "30"  # one of 2 tokens a minute comes back
    other = await gw.client.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        headers=gw.auth("viewer"),
    )
    assert other.status_code == 200  # per key
    assert await gw.sample("rate_limited_total", service="gateway", limit="rate") == 1


async def test_refused_requests_count_toward_the_rate_limit(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(
        {HOST: create_stub_app()}, inference_url=UPSTREAM, rate_limit_per_minute=2
    )
    assert (await gw.chat(model="no-such-model")).status_code == 404
    assert (await gw.chat(model="auto", text="x")).status_code == 200
    assert_429(await gw.chat(), "rate_limited", "GATEWAY_RATE_LIMIT_PER_MINUTE")


async def test_a_stream_holds_its_slot_until_it_ends(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(
        {HOST: await slow_stub(0.01)}, inference_url=UPSTREAM, max_concurrent_per_key=1
    )
    stream = asyncio.create_task(gw.chat(text=LONG, stream=True))
    await wait_in_flight(gw, 1)
    busy = await gw.chat()
    assert_429(busy, "too_many_concurrent_requests", "GATEWAY_MAX_CONCURRENT_PER_KEY")
    assert busy.headers["retry-after"] == "1"
    assert await gw.sample("rate_limited_total", service="gateway", limit="concurrency") == 1
    viewer = await gw.client.post(
        "/v1/embeddings", json={"model": "chat", "input": "hi"}, headers=gw.auth("viewer")
    )
    assert viewer.status_code == 200  # another key has its own slots
    done = await stream
    assert done.status_code == 200
    assert done.text.rstrip().endswith("data: [DONE]")
    await wait_in_flight(gw, 0)
    assert (await gw.chat()).status_code == 200


async def test_a_client_that_goes_away_before_the_answer_frees_its_slot(
    make_gateway: MakeGateway,
) -> None:
    # In-process the upstream's answer arrives whole (httpx's ASGITransport buffers it),
    # so this cancels while the gateway waits for it; a client leaving in the middle of
    # a relayed stream: tests/integration/test_gateway_fairness_live.py.
    gw = await make_gateway(
        {HOST: await slow_stub(1.0)}, inference_url=UPSTREAM, max_concurrent_per_key=1
    )
    stream = asyncio.create_task(gw.chat(text=LONG, stream=True))
    await wait_in_flight(gw, 1)
    stream.cancel()
    await asyncio.gather(stream, return_exceptions=True)
    await wait_in_flight(gw, 0)
    assert (await gw.chat()).status_code == 200


async def test_upstream_failures_release_the_slot(make_gateway: MakeGateway) -> None:
    gw = await make_gateway({}, inference_url=UPSTREAM, max_concurrent_per_key=1)
    for _ in range(3):  # nothing listens: 503 each time, never 429
        assert (await gw.chat()).status_code == 503
    await wait_in_flight(gw, 0)


async def test_forwarded_routes_are_limited_too(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(
        {HOST: create_stub_app()}, inference_url=UPSTREAM, rate_limit_per_minute=1
    )
    first = await gw.client.get("/v1/tools", headers=gw.auth())
    assert first.status_code == 503  # no MCP server here; the call still counts
    limited = await gw.client.post("/v1/tools/x/call", json={}, headers=gw.auth())
    assert_429(limited, "rate_limited", "GATEWAY_RATE_LIMIT_PER_MINUTE")
    assert limited.headers["connection"] == "close"  # the body was never read
    await wait_in_flight(gw, 0)


async def test_a_broken_fairness_database_is_503_not_unlimited(make_gateway: MakeGateway) -> None:
    gw = await make_gateway({HOST: create_stub_app()}, inference_url=UPSTREAM)
    gw.app.state.fairness.db.connection().execute("DROP TABLE buckets")
    response = await gw.chat()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "fairness_unavailable"
