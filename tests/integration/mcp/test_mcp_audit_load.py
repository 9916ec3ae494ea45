"""8 concurrent clients × 500 calls: an intent and an outcome row per call, none lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

CLIENTS = 8
CALLS = 500


def test_concurrent_calls_each_have_an_intent_and_an_outcome_row(start_mcp) -> None:
    server = start_mcp(rate_limit_per_minute=100_000)
    keys = [server.key(f"user{i}", "viewer") for i in range(CLIENTS)]

    def client_run(key: str) -> list[int]:
        statuses = []
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            for _ in range(CALLS):
                response = client.post("/tools/system_info/call", json={"arguments": {}})
                statuses.append(response.status_code)
        return statuses

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client_run, keys))
    assert all(status == 200 for statuses in results for status in statuses)
    assert server.audit_count() == 2 * CLIENTS * CALLS
    for i in range(CLIENTS):
        assert server.audit_count("user_name = ? AND outcome = 'ok'", (f"user{i}",)) == CALLS
        assert server.audit_count("user_name = ? AND outcome = 'started'", (f"user{i}",)) == CALLS
    assert server.audit_count("call_id IS NULL") == 0
    unpaired = "call_id IN (SELECT call_id FROM audit_log GROUP BY call_id HAVING COUNT(*) != 2)"
    assert server.audit_count(unpaired) == 0
    metrics = httpx.get(f"{server.url}/metrics").text
    assert f'mcp_tool_executions_total{{status="ok",tool="system_info"}} {CLIENTS * CALLS}.0' in (
        metrics
    )
