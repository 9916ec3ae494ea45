"""Outgoing clients forward the current request id to upstreams."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import respx

from services.core.context import REQUEST_ID_HEADER, request_id_var
from services.core.http import add_request_id_forwarding, default_ssl_context, make_async_client

UPSTREAM = "http://upstream.test"


async def test_forwards_current_request_id() -> None:
    token = request_id_var.set("req-abc")
    try:
        with respx.mock(base_url=UPSTREAM) as mock:
            route = mock.get("/v1/models").mock(return_value=httpx.Response(200, json={}))
            async with make_async_client() as client:
                response = await client.get(f"{UPSTREAM}/v1/models")
    finally:
        request_id_var.reset(token)
    assert response.status_code == 200
    assert route.call_count == 1
    assert route.calls.last.request.headers[REQUEST_ID_HEADER] == "req-abc"


async def test_no_header_outside_a_request() -> None:
    with respx.mock(base_url=UPSTREAM) as mock:
        route = mock.get("/x").mock(return_value=httpx.Response(204))
        async with make_async_client() as client:
            await client.get(f"{UPSTREAM}/x")
    assert REQUEST_ID_HEADER not in route.calls.last.request.headers


async def test_explicit_header_is_not_overwritten() -> None:
    token = request_id_var.set("from-context")
    try:
        with respx.mock(base_url=UPSTREAM) as mock:
            route = mock.post("/x").mock(return_value=httpx.Response(200))
            async with make_async_client(headers={"x-request-id": "client-default"}) as client:
                await client.post(f"{UPSTREAM}/x", headers={"X-Request-Id": "explicit"})
                await client.post(f"{UPSTREAM}/x")
    finally:
        request_id_var.reset(token)
    first, second = route.calls
    assert first.request.headers.get_list(REQUEST_ID_HEADER) == ["explicit"]
    assert second.request.headers.get_list(REQUEST_ID_HEADER) == ["client-default"]


async def test_each_task_forwards_its_own_request_id() -> None:
    with respx.mock(base_url=UPSTREAM) as mock:
        route = mock.get("/x").mock(return_value=httpx.Response(200))
        async with make_async_client() as client:

            async def call(request_id: str) -> None:
                request_id_var.set(request_id)
                await asyncio.sleep(0)
                await client.get(f"{UPSTREAM}/x", params={"id": request_id})

            await asyncio.gather(*(call(f"req-{i}") for i in range(5)))
    for call_ in route.calls:
        assert call_.request.headers[REQUEST_ID_HEADER] == call_.request.url.params["id"]
    assert route.call_count == 5
    assert request_id_var.get() is None


async def test_timeouts() -> None:
    async with make_async_client() as client:
        assert client.timeout.connect == 2.0
        assert client.timeout.read == 300.0
    async with make_async_client(connect_timeout=0.5, read_timeout=7) as client:
        assert client.timeout.connect == 0.5
        assert client.timeout.read == 7


async def test_existing_hooks_are_kept_and_forwarding_added_once() -> None:
    seen: list[str] = []

    async def own_hook(request: httpx.Request) -> None:
        seen.append(request.headers.get(REQUEST_ID_HEADER, "-"))

    token = request_id_var.set("req-hooks")
    try:
        with respx.mock(base_url=UPSTREAM) as mock:
            route = mock.get("/x").mock(return_value=httpx.Response(200))
            async with make_async_client(event_hooks={"request": [own_hook]}) as client:
                add_request_id_forwarding(client)  # idempotent
                assert len(client.event_hooks["request"]) == 2
                await client.get(f"{UPSTREAM}/x")
    finally:
        request_id_var.reset(token)
    # The user's hook ran first, before the id was added; the request still carried it.
    assert seen == ["-"]
    assert route.calls.last.request.headers[REQUEST_ID_HEADER] == "req-hooks"


async def test_clients_share_one_verifying_tls_context() -> None:
    context = default_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.get_ca_certs() or context.cert_store_stats()["x509_ca"]
    async with make_async_client() as first, make_async_client() as second:
        # httpcore's pool keeps the context it was given (private, but the only handle).
        pools = [client._transport._pool for client in (first, second)]  # type: ignore[attr-defined]
        assert all(pool._ssl_context is context for pool in pools)
    own_context = ssl.create_default_context()
    async with make_async_client(verify=own_context) as own:
        assert own._transport._pool._ssl_context is own_context  # type: ignore[attr-defined]
