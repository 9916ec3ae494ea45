"""The monitoring stack, live: real Prometheus and Alertmanager watch the platform's stack.

Configuration is rendered from the files under docker/ (the real rules and routes, with
`for` capped at 5 s, 1 s intervals and 1 s Alertmanager group timings); alerts are
delivered to an AlertListener on a free port. The tests check that every target is scraped,
that every dashboard panel has data after traffic through every service, that a stopped
service pages and resolves, that a burst of upstream 5xx fires the error-ratio alert, and
that the services' JSON logs let one request be followed across gateway, MCP and RAG.

Grafana, Loki and Alloy are not installable here: the Loki panels (log panels) are checked
statically only (tests/unit/monitoring).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from ai_suite_pytest.stack import Stack

from services.monitoring.dashboards import expand_variables
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import migrate
from tests.e2e.monitoring_support import (
    ALL_JOBS,
    Monitoring,
    dashboard_panel_queries,
    has_data,
    missing_binaries,
    parse_log,
    poll,
    read_logs,
    running_monitoring,
)

LOGGED_SERVICES = ("gateway", "mcp", "rag")
COLLECTION = "monitoring_e2e"
DOCUMENT = {
    "id": "monitoring-guide",
    "text": "Prometheus scrapes every service; Alertmanager routes alerts to receivers.",
}
# Deadlines, not expectations: generous for a loaded CI machine.
TARGETS_TIMEOUT = 60.0
PANELS_TIMEOUT = 60.0
ALERT_TIMEOUT = 90.0

# Panels allowed to be empty after healthy traffic, keyed by (dashboard, panel id) with the
# title to catch a renumbered panel. Each is an error or incident panel whose series only
# exist once something went wrong; everything else must show data.
MAY_BE_EMPTY: dict[tuple[str, int], tuple[str, str]] = {
    ("Local AI Suite — gateway & LLM backends", 7): (
        "Failed upstream attempts by backend and reason",
        "llm_upstream_errors_total{backend,reason} exists only after a failed attempt",
    ),
    ("Local AI Suite — gateway & LLM backends", 10): (
        "Requests that found no backend (last hour)",
        'llm_requests_total{backend="none"} exists only when every backend failed',
    ),
    ("Local AI Suite — system overview", 10): (
        "Firing alerts",
        "the ALERTS table is empty while nothing fires (panel 3 counts them with vector(0))",
    ),
    ("Local AI Suite — system overview", 12): (
        "Restarts by ai-suite up",
        "ai_suite_service_restarts_total exists only under `ai-suite up`, not in a test stack",
    ),
}


@dataclass(frozen=True)
class Keys:
    developer: str
    viewer: str
    admin: str


@pytest.fixture(scope="module")
def monitoring(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitoring]:
    reason = missing_binaries()
    if reason is not None:
        pytest.skip(reason)
    with running_monitoring(stack, tmp_path_factory.mktemp("monitoring")) as running:
        yield running


@pytest.fixture(scope="module")
def keys(stack: Stack) -> Keys:
    db = Database(stack.data_dir / "security.db")
    try:
        migrate(db)
        store = KeyStore(db)
        suffix = uuid.uuid4().hex[:8]
        return Keys(
            *(
                store.create_key(f"monitoring-{role}-{suffix}", role).key
                for role in ("developer", "viewer", "admin")
            )
        )
    finally:
        db.close()


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("gateway"), timeout=60.0, trust_env=False) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(gateway: httpx.Client, key: str, text: str = "are you there?") -> httpx.Response:
    return gateway.post(
        "/v1/chat/completions",
        headers=bearer(key),
        json={"model": "chat", "messages": [{"role": "user", "content": text}]},
    )


def index_document(gateway: httpx.Client, key: str) -> httpx.Response:
    """Index the module's one document (creates the collection on first use)."""
    return gateway.post(
        f"/v1/rag/collections/{COLLECTION}/documents",
        headers=bearer(key),
        json={"documents": [DOCUMENT]},
    )


def traffic(gateway: httpx.Client, keys: Keys) -> None:
    """One round through every service, each answer checked so a broken call fails here."""
    calls: list[tuple[str, httpx.Response, int]] = [
        ("models", gateway.get("/v1/models", headers=bearer(keys.developer)), 200),
        ("chat", chat(gateway, keys.developer), 200),
        ("unknown path", gateway.get("/v1/no-such-route", headers=bearer(keys.developer)), 404),
        ("bad key", gateway.get("/v1/models", headers=bearer("ais_" + "x" * 40)), 401),
        ("tools list", gateway.get("/v1/tools", headers=bearer(keys.developer)), 200),
        (
            "rag index",
            index_document(gateway, keys.developer),
            200,
        ),
        (
            "rag index as viewer (RBAC denial)",
            index_document(gateway, keys.viewer),
            403,
        ),
        (
            "rag query",
            gateway.post(
                "/v1/rag/query",
                headers=bearer(keys.developer),
                json={"collection": COLLECTION, "query": "who routes alerts?"},
            ),
            200,
        ),
        (
            "rag_search tool",
            gateway.post(
                "/v1/tools/rag_search/call",
                headers=bearer(keys.developer),
                json={"arguments": {"query": "who scrapes services?", "collection": COLLECTION}},
            ),
            200,
        ),
    ]
    # A HIGH tool asks for approval; an admin rejects it (approval metrics, time to decision).
    pending = gateway.post(
        "/v1/tools/write_file/call",
        headers=bearer(keys.developer),
        json={"arguments": {"path": "monitoring-e2e.txt", "content": "never written"}},
    )
    calls.append(("write_file (needs approval)", pending, 202))
    if pending.status_code == 202:
        rejected = gateway.post(
            f"/v1/approvals/{pending.json()['approval_id']}/reject",
            headers=bearer(keys.admin),
            json={"reason": "monitoring e2e traffic"},
        )
        calls.append(("reject approval", rejected, 200))
    wrong = [
        f"{name}: {response.status_code} (expected {expected}) {response.text[:300]}"
        for name, response, expected in calls
        if response.status_code != expected
    ]
    assert wrong == [], "traffic failed:\n" + "\n".join(wrong)


def test_every_scrape_target_is_up(monitoring: Monitoring) -> None:
    def probe() -> tuple[bool, Any]:
        targets = {
            t["labels"].get("job", "?"): (t["health"], t.get("lastError", ""))
            for t in monitoring.targets()
        }
        done = set(targets) == set(ALL_JOBS) and all(h == "up" for h, _ in targets.values())
        return done, targets

    targets = poll(probe, timeout=TARGETS_TIMEOUT, what=f"all of {ALL_JOBS} up")
    assert sorted(targets) == sorted(ALL_JOBS)
    # The real rules loaded: the alerts the docs describe are there to evaluate.
    groups = monitoring.api("/api/v1/rules")["groups"]
    alerts = {
        rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"
    }
    assert {"ServiceDown", "High5xxRatio", "LlmUpstreamFailing"} <= alerts


def test_every_dashboard_panel_has_data_after_traffic(
    monitoring: Monitoring, gateway: httpx.Client, keys: Keys
) -> None:
    queries = dashboard_panel_queries()
    known = {(q.dashboard, q.panel_id): q.panel for q in queries}
    stale = {key: title for key, (title, _) in MAY_BE_EMPTY.items() if known.get(key) != title}
    assert stale == {}, f"allowlisted panels that do not exist (any more): {stale}"

    # Two rounds with a scrape in between: a labelled series is born at its first event,
    # and rate() needs a second, larger sample to show more than nothing.
    traffic(gateway, keys)
    monitoring.wait_scraped_after(time.time())
    traffic(gateway, keys)

    checked = [q for q in queries if q.datasource_type == "prometheus"]
    assert checked, "no Prometheus panel queries found"
    required = [q for q in checked if (q.dashboard, q.panel_id) not in MAY_BE_EMPTY]

    def probe() -> tuple[bool, Any]:
        empty = [
            f"{q.where}: {q.expr}"
            for q in required
            if not has_data(monitoring.query(expand_variables(q.expr)))
        ]
        return not empty, "\n".join(empty)

    poll(
        probe,
        timeout=PANELS_TIMEOUT,
        every=1.0,
        what="dashboard panels without data after traffic through every service",
    )
    # The allowlisted ones must still be valid queries (an API error raises).
    for q in checked:
        monitoring.query(expand_variables(q.expr))


def test_mcp_requests_are_labelled_with_their_route(
    monitoring: Monitoring, gateway: httpx.Client, keys: Keys
) -> None:
    listed = gateway.get("/v1/tools", headers=bearer(keys.developer))
    assert listed.status_code == 200, listed.text
    monitoring.wait_scraped_after(time.time())
    routes = {
        sample["metric"]["route"]
        for sample in monitoring.query('http_requests_total{service="mcp"}')
    }
    # Every MCP request of this module went to a real route: none may be <unmatched>, or
    # the MCP dashboard's route panel and service_route:http_requests:rate5m say nothing.
    assert "/tools" in routes
    assert "<unmatched>" not in routes


@pytest.mark.stack_exclusive
def test_stopped_service_pages_and_resolves(stack: Stack, monitoring: Monitoring) -> None:
    stack.stop("rag")
    try:
        alert = monitoring.wait_prometheus_firing("ServiceDown", ALERT_TIMEOUT, service="rag")
        assert alert["labels"]["severity"] == "critical"
        monitoring.wait_alertmanager_active("ServiceDown", ALERT_TIMEOUT, service="rag")
        firing = monitoring.listener.wait_for(
            alertname="ServiceDown", status="firing", service="rag", timeout=ALERT_TIMEOUT
        )
        assert firing.receiver == "critical"
        assert firing.annotations["runbook_url"].endswith("MONITORING_GUIDE.md#servicedown")
    finally:
        stack.start("rag")
    stack.wait_healthy("rag", timeout=90)
    resolved = monitoring.listener.wait_for(
        alertname="ServiceDown", status="resolved", service="rag", timeout=ALERT_TIMEOUT
    )
    assert resolved.fingerprint == firing.fingerprint


@pytest.mark.stack_exclusive
def test_upstream_5xx_burst_fires_the_error_ratio_alert(
    stack: Stack, monitoring: Monitoring, gateway: httpx.Client, keys: Keys
) -> None:
    # Upstream 500 is not retried nor counted as an upstream failure (only connect errors
    # and 502/503/504 are: LlmUpstreamFailing); the gateway passes it on, so the alert for
    # it is High5xxRatio on the gateway.
    stub = f"{stack.url('stub-inference')}/_stub/config"
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        try:
            # One failure first: its series must exist in Prometheus before the burst, or
            # the burst would only be the first sample of a new series (no rate).
            assert client.post(stub, json={"fail_next": 1, "fail_status": 500}).is_success
            assert chat(gateway, keys.developer).status_code == 500

            def probe() -> tuple[bool, Any]:
                found = monitoring.query('http_requests_total{service="gateway",status="500"}')
                return bool(found), found

            poll(probe, timeout=TARGETS_TIMEOUT, what="the gateway's 500 series scraped")
            burst = 30
            assert client.post(stub, json={"fail_next": burst, "fail_status": 500}).is_success
            statuses = [chat(gateway, keys.developer).status_code for _ in range(burst)]
            assert statuses == [500] * burst
        finally:
            client.post(stub, json={"fail_next": 0})

    alert = monitoring.wait_prometheus_firing("High5xxRatio", ALERT_TIMEOUT, service="gateway")
    assert alert["labels"]["severity"] == "critical"
    notification = monitoring.listener.wait_for(
        alertname="High5xxRatio", status="firing", service="gateway", timeout=ALERT_TIMEOUT
    )
    assert notification.receiver == "critical"


def test_logs_are_json_and_one_request_can_be_followed(
    stack: Stack, gateway: httpx.Client, keys: Keys
) -> None:
    # Self-contained (xdist may run it without the traffic test): the collection must exist.
    indexed = index_document(gateway, keys.developer)
    assert indexed.status_code == 200, indexed.text
    request_id = f"monitoring-e2e-{uuid.uuid4().hex}"
    # gateway /v1/tools -> MCP rag_search -> RAG /query, all with the caller's request id.
    response = gateway.post(
        "/v1/tools/rag_search/call",
        headers={**bearer(keys.developer), "X-Request-ID": request_id},
        json={"arguments": {"query": "follow me", "collection": COLLECTION}},
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == request_id

    parsed: dict[str, tuple[list[dict[str, Any]], list[Any]]] = {}
    seen: dict[str, list[dict[str, Any]]] = {}

    def probe() -> tuple[bool, Any]:
        for name, text in read_logs(stack, LOGGED_SERVICES).items():
            parsed[name] = parse_log(name, text)
            seen[name] = [r for r in parsed[name][0] if r.get("request_id") == request_id]
        return all(seen.values()), {name: len(lines) for name, lines in seen.items()}

    poll(
        probe,
        timeout=30.0,
        what=f"lines with request id {request_id} in the gateway, mcp and rag logs",
    )
    problems = [str(problem) for _, issues in parsed.values() for problem in issues]
    assert problems == [], "log lines that are not the platform's JSON:\n" + "\n".join(problems)
    # The access line of each hop names the route the request took.
    assert "/v1/tools/{path:path}" in {r.get("route") for r in seen["gateway"]}
    assert "/query" in {r.get("route") for r in seen["rag"]}
