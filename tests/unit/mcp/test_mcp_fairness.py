"""Per-key fairness limits in the MCP pipeline (issue 11: refused calls count).

The limiter itself: tests/unit/security/test_fairness.py; across processes:
tests/integration/test_fairness_processes.py.
"""

from __future__ import annotations

import asyncio
import dataclasses

from prometheus_client.parser import text_string_to_metric_families


async def sample(env, name: str, **labels: str) -> float:
    text = (await env.client.get("/metrics")).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_refused_calls_count_toward_the_rate_limit(make_env) -> None:
    env = make_env(rate_limit_per_minute=3)
    # An unknown tool, a tool the role may not use, invalid arguments: all refused ...
    assert (await env.call("no_such_tool", "v", "viewer")).status_code == 404
    assert (await env.call("run_command", "v", "viewer")).status_code == 403
    invalid = await env.call("read_file", "v", "viewer", arguments={"path": 5})
    assert invalid.status_code == 400
    # ... and all counted: hammering refusals is not free.
    limited = await env.call("system_info", "v", "viewer")
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert error["code"] == "rate_limited"
    assert "MCP_RATE_LIMIT_PER_MINUTE" in error["message"]
    assert int(limited.headers["retry-after"]) >= 1
    assert await sample(env, "rate_limited_total", service="mcp", limit="rate") == 1
    assert await sample(env, "mcp_tool_executions_total", status="rate_limited") == 1


async def test_a_rate_limited_call_never_uses_up_an_approval(make_env) -> None:
    env = make_env(rate_limit_per_minute=1)
    arguments = {"path": "out.txt", "content": "x"}
    pending = await env.call("write_file", "d", "developer", arguments=arguments)
    assert pending.status_code == 202
    approval_id = pending.json()["approval_id"]
    admin = env.headers("a", "admin")
    approve = await env.client.post(f"/approvals/{approval_id}/approve", json={}, headers=admin)
    assert approve.status_code == 200
    limited = await env.call(
        "write_file", "d", "developer", arguments=arguments, approval_id=approval_id
    )
    assert limited.status_code == 429
    shown = await env.client.get(f"/approvals/{approval_id}", headers=admin)
    assert shown.json()["status"] == "approved"  # not consumed by the refused call
    assert not (env.workspace / "out.txt").exists()
    # Another MCP process over the same data directory, with a higher limit: the
    # approval is still there to be used once.
    later = make_env(rate_limit_per_minute=10_000)
    for _ in range(100):  # the shared bucket refills at 10_000/min: within milliseconds
        ran = await later.call(
            "write_file", "d", "developer", arguments=arguments, approval_id=approval_id
        )
        if ran.status_code != 429:
            break
        await asyncio.sleep(0.01)
    assert ran.status_code == 200
    assert (env.workspace / "out.txt").read_text() == "x"


async def test_concurrent_calls_of_one_key_are_capped(make_env) -> None:
    env = make_env(max_concurrent_per_key=2)
    pipeline = env.app.state.pipeline
    release = asyncio.Event()
    started = 0

    async def slow(ctx, args):
        nonlocal started
        started += 1
        await release.wait()
        return {"ok": True}

    pipeline.tools["system_info"] = dataclasses.replace(pipeline.tools["system_info"], run=slow)
    running = [asyncio.create_task(env.call("system_info", "d", "developer")) for _ in range(2)]
    for _ in range(500):
        if started == 2:
            break
        await asyncio.sleep(0.01)
    assert started == 2
    busy = await env.call("system_info", "d", "developer")
    assert busy.status_code == 429
    assert busy.json()["error"]["code"] == "too_many_concurrent_requests"
    assert "MCP_MAX_CONCURRENT_PER_KEY" in busy.json()["error"]["message"]
    assert busy.headers["retry-after"] == "1"
    assert await sample(env, "rate_limited_total", service="mcp", limit="concurrency") == 1
    assert await sample(env, "fairness_in_flight", service="mcp") == 2
    other = asyncio.create_task(env.call("system_info", "v", "viewer"))  # another key
    for _ in range(500):
        if started == 3:
            break
        await asyncio.sleep(0.01)
    assert started == 3
    release.set()
    assert [r.status_code for r in await asyncio.gather(*running, other)] == [200, 200, 200]
    assert await sample(env, "fairness_in_flight", service="mcp") == 0
    assert (await env.call("system_info", "d", "developer")).status_code == 200


async def test_a_broken_fairness_database_is_503_and_audited(env) -> None:
    env.app.state.pipeline.fairness.db.connection().execute("DROP TABLE buckets")
    response = await env.call("system_info", "d", "developer")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "fairness_unavailable"
    row = env.db.query_one("SELECT outcome, status FROM audit_log ORDER BY id DESC LIMIT 1")
    assert tuple(row) == ("error", 503)
