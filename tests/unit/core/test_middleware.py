"""Request ids, route-template metrics, probes and readiness of build_service_app."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import string
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.responses import JSONResponse
from starlette.routing import Router
from starlette.types import Message

from services.core.app import ServiceParts, build_service_app
from services.core.context import REQUEST_ID_HEADER, accept_request_id, request_id_var, route_var
from services.core.health import Check
from services.core.metrics import LATENCY_BUCKETS, UNMATCHED_ROUTE, HttpMetrics
from services.core.middleware import RequestContextMiddleware

HEX32 = re.compile(r"^[0-9a-f]{32}$")
REQUESTS = "http_requests_total"
BUCKETS = "http_request_duration_seconds_bucket"


def make_parts(service: str = "svc") -> ServiceParts:
    parts = build_service_app(service)
    app: FastAPI = parts.app

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict:
        return {"item_id": item_id, "request_id": request_id_var.get()}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                await asyncio.sleep(0.02)
                yield f"chunk{i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/own-header")
    async def own_header() -> JSONResponse:
        return JSONResponse({}, headers={REQUEST_ID_HEADER: "set-by-handler"})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler crashed")

    return parts


@pytest.fixture
def parts() -> ServiceParts:
    return make_parts()


@pytest.fixture
async def client(
    parts: ServiceParts, client_for: Callable[..., httpx.AsyncClient]
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(parts.app) as c:
        yield c


def labels_of(samples: list) -> list[dict[str, str]]:
    return [dict(s.labels) for s in samples]


# --- request ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", ["abc-123", "a.b:c_d-e", "X" * 128, "0"])
async def test_well_formed_request_id_is_echoed(client: httpx.AsyncClient, request_id: str) -> None:
    response = await client.get("/items/1", headers={REQUEST_ID_HEADER: request_id})
    assert response.status_code == 200
    assert response.headers[REQUEST_ID_HEADER] == request_id
    assert response.json()["request_id"] == request_id  # visible to handlers via the context


async def test_missing_request_id_is_generated(client: httpx.AsyncClient) -> None:
    first = await client.get("/items/1")
    second = await client.get("/items/1")
    ids = [first.headers[REQUEST_ID_HEADER], second.headers[REQUEST_ID_HEADER]]
    assert all(HEX32.fullmatch(i) for i in ids)
    assert ids[0] != ids[1]
    assert first.json()["request_id"] == ids[0]


@pytest.mark.parametrize(
    "bad",
    ["has space", "x" * 129, "semi;colon", "a/b", "line\nbreak", "tab\there", "é".encode(), ""],
)
async def test_malformed_request_id_is_replaced(
    client: httpx.AsyncClient, bad: str | bytes
) -> None:
    response = await client.get("/items/1", headers={REQUEST_ID_HEADER: bad})
    assert HEX32.fullmatch(response.headers[REQUEST_ID_HEADER])
    assert response.json()["request_id"] == response.headers[REQUEST_ID_HEADER]


@pytest.mark.parametrize("bad", ["a\nb", "x\r\nInjected: 1", "ok\n", " ok", "ok "])
def test_accept_request_id_rejects_injection(bad: str) -> None:
    assert HEX32.fullmatch(accept_request_id(bad))
    assert accept_request_id(None) != accept_request_id(None)


async def test_handler_request_id_header_is_replaced_not_duplicated(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/own-header", headers={REQUEST_ID_HEADER: "mine"})
    assert response.headers.get_list(REQUEST_ID_HEADER) == ["mine"]


async def test_context_is_reset_after_the_request(client: httpx.AsyncClient) -> None:
    await client.get("/items/1", headers={REQUEST_ID_HEADER: "temp-id"})
    assert request_id_var.get() is None


# --- metrics ---------------------------------------------------------------------------------


async def test_route_label_is_the_template(client: httpx.AsyncClient, scrape) -> None:
    for item in (1, 2, 3):
        assert (await client.get(f"/items/{item}")).status_code == 200
    assert (await client.get("/items/not-a-number")).status_code == 422
    samples = await scrape(client, REQUESTS)
    by_labels = {(s.labels["route"], s.labels["status"]): s.value for s in samples}
    assert by_labels == {("/items/{item_id}", "200"): 3.0, ("/items/{item_id}", "422"): 1.0}
    assert all(s.labels["service"] == "svc" and s.labels["method"] == "GET" for s in samples)


async def test_unknown_paths_share_one_label(client: httpx.AsyncClient, scrape) -> None:
    rng = random.Random(1234)
    alphabet = string.ascii_letters + string.digits + "-_."

    def random_path() -> str:
        depth = rng.randint(1, 4)
        return "/" + "/".join(
            "".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(depth)
        )

    first = await client.get("/definitely/not/here")
    assert first.status_code == 404
    samples = await scrape(client, REQUESTS)
    assert labels_of(samples) == [
        {"service": "svc", "method": "GET", "route": UNMATCHED_ROUTE, "status": "404"}
    ]
    series_after_first = len(samples)
    bucket_series = len(await scrape(client, BUCKETS))

    # 1,000 against the running platform: tests/e2e/test_platform_up.py
    for _ in range(300):
        await client.get(random_path())

    samples = await scrape(client, REQUESTS)
    assert len(samples) == series_after_first
    assert samples[0].value == 301.0
    assert len(await scrape(client, BUCKETS)) == bucket_series


async def test_probes_and_scrapes_are_not_counted(client: httpx.AsyncClient, scrape) -> None:
    for path in ("/metrics", "/health", "/ready", "/metrics", "/health", "/ready"):
        assert (await client.get(path)).status_code == 200
    assert await scrape(client, REQUESTS) == []
    assert await scrape(client, BUCKETS) == []


async def test_histogram_uses_latency_buckets(client: httpx.AsyncClient, scrape) -> None:
    await client.get("/items/1")
    buckets = await scrape(client, BUCKETS)
    bounds = [float(s.labels["le"]) for s in buckets if s.labels["route"] == "/items/{item_id}"]
    assert bounds == [*LATENCY_BUCKETS, float("inf")]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == 1.0


async def test_streaming_response_passes_through_and_is_timed(
    client: httpx.AsyncClient, scrape
) -> None:
    response = await client.get("/stream", headers={REQUEST_ID_HEADER: "stream-1"})
    assert response.status_code == 200
    assert response.text == "chunk0\nchunk1\nchunk2\n"
    assert response.headers[REQUEST_ID_HEADER] == "stream-1"
    total = await scrape(client, "http_request_duration_seconds_sum")
    (stream_sum,) = [s.value for s in total if s.labels["route"] == "/stream"]
    assert stream_sum >= 0.05  # the duration covers the whole body, not just the headers


async def test_crashing_handler_is_counted_as_500(client: httpx.AsyncClient, scrape) -> None:
    with pytest.raises(RuntimeError, match="handler crashed"):
        await client.get("/boom")
    samples = await scrape(client, REQUESTS)
    assert {(s.labels["route"], s.labels["status"]) for s in samples} == {("/boom", "500")}
    assert request_id_var.get() is None


async def test_process_and_platform_metrics_are_present(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert re.search(r"^process_\w+ ", text, re.MULTILINE)
    assert "python_info" in text


async def test_two_apps_do_not_share_series(client_for, scrape) -> None:
    one, two = make_parts("one"), make_parts("two")
    assert one.registry is not two.registry
    async with client_for(one.app) as c1, client_for(two.app) as c2:
        await c1.get("/items/1")
        await c1.get("/items/2")
        assert [s.value for s in await scrape(c1, REQUESTS)] == [2.0]
        assert await scrape(c2, REQUESTS) == []
        await c2.get("/items/1")
        assert [(s.labels["service"], s.value) for s in await scrape(c2, REQUESTS)] == [
            ("two", 1.0)
        ]
        assert [s.value for s in await scrape(c1, REQUESTS)] == [2.0]
    # Nothing registered in the process-wide default registry.
    assert (
        REGISTRY.get_sample_value(
            REQUESTS,
            {"service": "one", "method": "GET", "route": "/items/{item_id}", "status": "200"},
        )
        is None
    )


async def test_access_log_line(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ai_suite.svc.access"):
        await client.get("/items/7")
        await client.get("/health")
    records = [r for r in caplog.records if r.name == "ai_suite.svc.access"]
    assert len(records) == 1  # probes are not logged
    record = records[0]
    assert record.getMessage() == "GET /items/{item_id} 200"
    assert record.status == 200
    assert record.method == "GET"
    assert record.duration_ms >= 0


async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope, receive, send) -> None:
        seen.append(scope["type"])

    registry = CollectorRegistry()
    middleware = RequestContextMiddleware(
        inner, service="s", router=Router(), metrics=HttpMetrics(registry)
    )

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    await middleware({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]
    assert registry.get_sample_value(REQUESTS, {"service": "s"}) is None


async def test_raw_header_bytes_are_validated() -> None:
    """Straight ASGI, so the header bytes reach the middleware unmodified."""
    sent: list[Message] = []

    async def inner(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    registry = CollectorRegistry()
    middleware = RequestContextMiddleware(
        inner, service="s", router=Router(), metrics=HttpMetrics(registry)
    )

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    for raw in (b"a\nb", b"\xff\xfe", b"x\r\nSet-Cookie: evil=1"):
        sent.clear()
        scope = {"type": "http", "method": "GET", "path": "/p", "headers": [(b"x-request-id", raw)]}
        await middleware(scope, receive, send)
        headers = dict(sent[0]["headers"])
        assert HEX32.fullmatch(headers[b"x-request-id"].decode())
    assert (
        registry.get_sample_value(
            REQUESTS, {"service": "s", "method": "GET", "route": UNMATCHED_ROUTE, "status": "204"}
        )
        == 3.0
    )


# --- probes ----------------------------------------------------------------------------------


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "svc"}
    assert HEX32.fullmatch(response.headers[REQUEST_ID_HEADER])


async def test_ready_without_checks(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "service": "svc", "checks": {}}


async def ok() -> str | None:
    return None


async def raises() -> str | None:
    raise ConnectionError("connection refused")


async def hangs() -> str | None:
    await asyncio.sleep(10)
    return None


async def reason() -> str | None:
    return "index not built yet"


async def test_ready_with_passing_check(parts: ServiceParts, client: httpx.AsyncClient) -> None:
    parts.checks.append(Check("database", ok))
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (Check("upstream", raises), "ConnectionError: connection refused"),
        (Check("upstream", hangs, timeout=0.05), "no answer within 0.05s"),
        (Check("upstream", reason), "index not built yet"),
    ],
    ids=["raises", "times-out", "reason"],
)
async def test_ready_names_the_failing_check(
    parts: ServiceParts, client: httpx.AsyncClient, check: Check, expected: str
) -> None:
    parts.checks.extend([Check("database", ok), check])
    started = time.perf_counter()
    response = await client.get("/ready")
    assert time.perf_counter() - started < 2
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["not_ready"] == ["upstream"]
    assert body["checks"] == {"database": "ok", "upstream": expected}


async def test_ready_runs_checks_concurrently(
    parts: ServiceParts, client: httpx.AsyncClient
) -> None:
    # "waits" only passes if "signals" runs while it waits: no timing assumptions.
    signalled = asyncio.Event()

    async def waits() -> str | None:
        await signalled.wait()
        return None

    async def signals() -> str | None:
        signalled.set()
        return None

    parts.checks.extend(
        [
            Check("waits", waits, timeout=5),
            Check("signals", signals),
            Check("broken", raises),
            Check("slow", hangs, timeout=0.05),
        ]
    )
    response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["not_ready"] == ["broken", "slow"]
    assert body["checks"]["waits"] == "ok"
    assert body["checks"]["signals"] == "ok"


async def test_routes_of_included_routers_keep_their_template() -> None:
    from fastapi import APIRouter
    from prometheus_client.parser import text_string_to_metric_families

    from services.core.app import build_service_app

    parts = build_service_app("svc")
    router = APIRouter(prefix="/tools")

    @router.get("/{name}")
    async def tool(name: str) -> dict[str, str]:
        return {"name": name}

    parts.app.include_router(router)
    transport = httpx.ASGITransport(app=parts.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/tools/read_file")).status_code == 200
        text = (await client.get("/metrics")).text
    routes = {
        sample.labels["route"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total"
    }
    assert routes == {"/tools/{name}"}


async def test_ready_is_degraded_not_503_when_only_optional_checks_fail(
    parts: ServiceParts, client: httpx.AsyncClient
) -> None:
    parts.checks.extend(
        [Check("database", ok), Check("backend:a", reason, critical=False), Check("b", ok)]
    )
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "service": "svc",
        "checks": {"database": "ok", "backend:a": "index not built yet", "b": "ok"},
        "degraded": ["backend:a"],
    }


async def test_ready_is_503_when_a_critical_check_fails_beside_an_optional_one(
    parts: ServiceParts, client: httpx.AsyncClient
) -> None:
    parts.checks.extend([Check("database", raises), Check("backend:a", raises, critical=False)])
    response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["not_ready"], body["degraded"]) == (
        "not ready",
        ["database"],
        ["backend:a"],
    )


async def test_route_seen_by_handlers_is_the_template_also_when_cached(client_for) -> None:
    parts = make_parts()
    seen: list[str | None] = []

    @parts.app.get("/who/{name}")
    async def who(name: str) -> dict:
        seen.append(route_var.get())
        return {"name": name}

    async with client_for(parts.app) as client:
        for name in ("a", "b", "a"):  # the second "a" comes from the cache
            assert (await client.get(f"/who/{name}")).status_code == 200
        assert seen == ["/who/{name}"] * 3
        assert (await client.get("/late")).status_code == 404  # cached as unmatched

        @parts.app.get("/late")  # a route added after requests were served
        async def late() -> dict:
            seen.append(route_var.get())
            return {}

        assert (await client.get("/late")).status_code == 200
        assert seen[-1] == "/late"
