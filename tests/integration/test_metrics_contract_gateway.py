"""The live gateway's /metrics against the platform's metrics contract, over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ai_suite_pytest.metrics import Contract, Metrics

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.support.keys import make_key
from tests.support.live import serve_in_thread

CONTRACT = Path(__file__).resolve().parents[1] / "metrics_contract.yaml"


@pytest.fixture
def gateway(tmp_path: Path, stub_upstream: str) -> Iterator[tuple[str, str]]:
    """(base URL, developer key) of a gateway on a real socket with a real SQLite file."""
    settings = GatewaySettings(
        data_dir=tmp_path / "data", inference_url=stub_upstream, upstream_backoff_seconds=0.01
    )
    key = make_key(settings.security_db_path, "alice", "developer")
    with serve_in_thread(create_app(settings)) as url:
        yield url, key


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    manager = Metrics(contract=Contract.load(CONTRACT))
    yield manager
    assert manager.close() == []


def test_gateway_exposition_matches_the_contract(gateway, metrics) -> None:
    base, key = gateway
    watch = metrics.watch(base, service="gateway")
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/v1/models", headers=auth).status_code == 200
        chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/chat/completions", json=chat, headers=auth).status_code == 200
        assert client.get("/v1/models").status_code == 401
        assert client.get("/no/such/path").status_code == 404
    watch.assert_contract()
    watch.assert_lint()
    watch.assert_counter_delta(
        "http_requests_total", {"route": "/v1/models", "status": "200"}, delta=1
    )
    watch.assert_counter_delta("llm_requests_total", {"model": "chat", "status": "200"}, delta=1)
    watch.assert_histogram("llm_request_duration_seconds", {"model": "chat"}, count=1)
    # "hi" is one word to the stub; its reply "stub reply to: hi" four.
    watch.assert_counter_delta("llm_tokens_total", {"model": "chat", "kind": "prompt"}, delta=1)
    watch.assert_counter_delta("llm_tokens_total", {"model": "chat", "kind": "completion"}, delta=4)
    watch.assert_counter_delta("auth_failures_total", {"reason": "missing"}, delta=1)
    watch.assert_counter_delta(
        "rbac_permission_checks_total", {"result": "allowed", "role": "developer"}, delta=2
    )
    watch.assert_gauge("llm_circuit_breaker_state", value=0, aggregate=True)


def test_unknown_paths_do_not_grow_the_series_count(gateway, metrics) -> None:
    base, _ = gateway
    watch = metrics.watch(base, service="gateway")
    with httpx.Client(base_url=base, timeout=10) as client:
        watch.assert_cardinality_stable(lambda path: client.get(path), n=40)
    watch.assert_contract()


def test_a_contract_breach_is_reported(gateway, tmp_path: Path) -> None:
    base, _ = gateway
    narrowed = tmp_path / "contract.yaml"
    narrowed.write_text(
        "standard: ['process_.*', 'python_.*']\n"
        "metrics:\n"
        "  llm_circuit_breaker_state: {type: histogram, labels: {backend: any}}\n"
        "  audit_writes_total: {type: counter, labels: {outcome: any}}\n"
        "  gone_total: {type: counter, services: [gateway]}\n"
    )
    manager = Metrics(contract=Contract.load(narrowed))
    try:
        report = manager.watch(base, service="gateway").check_contract()
    finally:
        manager.close()
    kinds = {(v.kind, v.metric) for v in report.violations}
    assert ("type", "llm_circuit_breaker_state") in kinds
    assert ("labels", "audit_writes_total") in kinds
    assert ("missing", "gone_total") in kinds
    assert ("undeclared", "llm_requests_total") in kinds
