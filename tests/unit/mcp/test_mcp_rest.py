"""The REST facade and the pipeline behind it, in-process: statuses, codes, audit, metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.core.errors import error_response
from services.mcp.pipeline import CallError
from services.mcp.rest import api_error
from services.mcp.tools.base import ToolError
from tests.support.box import needs_box


def samples(text: str, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def audit_rows(env) -> list[dict]:
    return [dict(r) for r in env.db.query("SELECT * FROM audit_log ORDER BY id")]


async def test_tool_list_depends_on_role(env) -> None:
    viewer = (await env.client.get("/tools", headers=env.headers("v", "viewer"))).json()["data"]
    dev = (await env.client.get("/tools", headers=env.headers("d", "developer"))).json()["data"]
    admin = (await env.client.get("/tools", headers=env.headers("a", "admin"))).json()["data"]
    assert {t["sensitivity"] for t in viewer} == {"LOW"}
    assert {t["name"] for t in dev} - {t["name"] for t in viewer} == {
        "write_file",
        "git_add",
        "git_commit",
    }
    assert "run_command" in {t["name"] for t in admin}
    by_name = {t["name"]: t for t in dev}
    assert by_name["write_file"]["requires_approval"] is True
    assert by_name["read_file"]["requires_approval"] is False
    assert by_name["read_file"]["input_schema"]["required"] == ["path"]
    assert (await env.client.get("/tools")).status_code == 401


async def test_low_tool_runs_with_an_intent_and_an_outcome_row(env) -> None:
    (env.workspace / "a.txt").write_text("hello")
    response = await env.call("read_file", "d", "developer", arguments={"path": "a.txt"})
    assert response.status_code == 200
    body = response.json()
    assert body["tool"] == "read_file"
    assert body["result"]["content"] == "hello"
    assert body["duration_ms"] >= 0
    rows = audit_rows(env)
    assert [(r["action"], r["outcome"], r["status"]) for r in rows] == [
        ("tool:read_file", "started", None),
        ("tool:read_file", "ok", 200),
    ]
    assert rows[0]["call_id"]
    assert rows[0]["call_id"] == rows[1]["call_id"]
    assert all("hello" not in r["details"] for r in rows)
    assert {r["request_id"] for r in rows} == {response.headers["x-request-id"]}
    assert env.db.query_one("SELECT COUNT(*) FROM audit_open_calls")[0] == 0


async def test_write_approval_flow_over_rest(env) -> None:
    arguments = {"path": "out.txt", "content": "SECRET CONTENT"}
    pending = await env.call("write_file", "d", "developer", arguments=arguments)
    assert pending.status_code == 202
    approval_id = pending.json()["approval_id"]
    assert pending.json()["status"] == "pending"
    assert not (env.workspace / "out.txt").exists()

    early = await env.call(
        "write_file", "d", "developer", arguments=arguments, approval_id=approval_id
    )
    assert (early.status_code, early.json()["error"]["code"]) == (409, "approval_pending")

    listed = await env.client.get(
        "/approvals", params={"status": "pending"}, headers=env.headers("a", "admin")
    )
    assert [item["id"] for item in listed.json()["data"]] == [approval_id]
    mine = await env.client.get("/approvals", headers=env.headers("v", "viewer"))
    assert mine.json()["data"] == []
    own = await env.client.get(f"/approvals/{approval_id}", headers=env.headers("d", "developer"))
    assert own.json()["tool"] == "write_file"
    hidden = await env.client.get(f"/approvals/{approval_id}", headers=env.headers("v", "viewer"))
    assert hidden.status_code == 404

    refused = await env.client.post(
        f"/approvals/{approval_id}/approve", json={}, headers=env.headers("d", "developer")
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    approved = await env.client.post(
        f"/approvals/{approval_id}/approve",
        json={"reason": "fine"},
        headers=env.headers("a", "admin"),
    )
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"

    other_args = await env.call(
        "write_file",
        "d",
        "developer",
        arguments={**arguments, "content": "else"},
        approval_id=approval_id,
    )
    assert (other_args.status_code, other_args.json()["error"]["code"]) == (
        409,
        "approval_arguments_mismatch",
    )
    ran = await env.call(
        "write_file", "d", "developer", arguments=arguments, approval_id=approval_id
    )
    assert ran.status_code == 200
    assert (env.workspace / "out.txt").read_text() == "SECRET CONTENT"
    replay = await env.call(
        "write_file", "d", "developer", arguments=arguments, approval_id=approval_id
    )
    assert (replay.status_code, replay.json()["error"]["code"]) == (409, "approval_already_used")

    rows = audit_rows(env)
    # The tool's own rows carry path, size and hash, never content; the approval rows
    # carry the short preview the approver saw (issue 11).
    assert all(
        "SECRET CONTENT" not in r["details"] for r in rows if r["action"].startswith("tool:")
    )
    call_rows = [(r["outcome"], r["status"]) for r in rows if r["action"] == "tool:write_file"]
    assert call_rows == [
        ("pending", 202),
        ("denied", 409),
        ("denied", 409),
        ("started", None),
        ("ok", 200),
        ("denied", 409),
    ]
    transitions = [r["action"] for r in rows if r["action"].startswith("approval:")]
    assert transitions == ["approval:requested", "approval:approved", "approval:executed"]
    # The approval's `executed` row and the call's intent row are one transaction's
    # rows, adjacent; the intent names the approval it used.
    executed = next(i for i, r in enumerate(rows) if r["action"] == "approval:executed")
    intent = rows[executed + 1]
    assert (intent["action"], intent["outcome"]) == ("tool:write_file", "started")
    assert json.loads(intent["details"])["approval_id"] == approval_id

    metrics = (await env.client.get("/metrics")).text
    counts = samples(metrics, "approval_requests_total")
    assert counts[(("status", "requested"),)] == 1
    assert counts[(("status", "executed"),)] == 1
    executions = samples(metrics, "mcp_tool_executions_total")
    assert executions[(("status", "pending"), ("tool", "write_file"))] == 1
    assert executions[(("status", "ok"), ("tool", "write_file"))] == 1
    assert samples(metrics, "approvals_pending")[()] == 0


async def test_reject_needs_a_reason_and_cancel_is_for_the_requester(env) -> None:
    pending = await env.call("write_file", "d", "developer", arguments={"path": "x", "content": ""})
    approval_id = pending.json()["approval_id"]
    admin = env.headers("a", "admin")
    no_reason = await env.client.post(f"/approvals/{approval_id}/reject", json={}, headers=admin)
    assert (no_reason.status_code, no_reason.json()["error"]["code"]) == (400, "reason_required")
    bad = await env.client.post(f"/approvals/{approval_id}/reject", content=b"[1]", headers=admin)
    assert bad.status_code == 400
    rejected = await env.client.post(
        f"/approvals/{approval_id}/reject", json={"reason": "no"}, headers=admin
    )
    assert rejected.json()["status"] == "rejected"
    again = await env.call(
        "write_file",
        "d",
        "developer",
        arguments={"path": "x", "content": ""},
        approval_id=approval_id,
    )
    assert again.json()["error"]["code"] == "approval_rejected"

    second = (
        await env.call("write_file", "d", "developer", arguments={"path": "y", "content": ""})
    ).json()["approval_id"]
    other = await env.client.post(
        f"/approvals/{second}/cancel", headers=env.headers("e", "developer")
    )
    assert other.status_code == 404
    cancelled = await env.client.post(
        f"/approvals/{second}/cancel", headers=env.headers("d", "developer")
    )
    assert cancelled.json()["status"] == "cancelled"
    bad_status = await env.client.get("/approvals", params={"status": "weird"}, headers=admin)
    assert bad_status.status_code == 400


@needs_box
async def test_admin_self_approval_off_by_default_and_on_in_dev_mode(make_env) -> None:
    env = make_env()
    pending = await env.call("run_command", "a", "admin", arguments={"argv": ["echo", "hi"]})
    approval_id = pending.json()["approval_id"]
    refused = await env.client.post(
        f"/approvals/{approval_id}/approve", headers=env.headers("a", "admin")
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        403,
        "self_approval_forbidden",
    )
    dev_mode = make_env(allow_self_approval=True)
    dev_mode.keys = env.keys
    ok = await dev_mode.client.post(
        f"/approvals/{approval_id}/approve", headers=env.headers("a", "admin")
    )
    assert ok.status_code == 200
    ran = await dev_mode.call(
        "run_command", "a", "admin", arguments={"argv": ["echo", "hi"]}, approval_id=approval_id
    )
    assert ran.json()["result"]["stdout"] == "hi\n"


@pytest.mark.parametrize(
    ("tool", "body", "status", "code"),
    [
        ("nope", {}, 404, "tool_not_found"),
        ("run_command", {"arguments": {"argv": ["ls"]}}, 403, "permission_denied"),
        ("read_file", {"arguments": {}}, 400, "invalid_arguments"),
        ("read_file", {"arguments": {"path": "a", "extra": 1}}, 400, "invalid_arguments"),
        ("read_file", {"arguments": []}, 400, "invalid_body"),
        ("read_file", {"args": {}}, 400, "invalid_body"),
        ("read_file", {"arguments": {"path": "x"}, "approval_id": 5}, 400, "invalid_body"),
        ("read_file", {"arguments": {"path": "../../etc/passwd"}}, 403, "path_outside_workspace"),
        ("read_file", {"arguments": {"path": "missing"}}, 400, "path_not_found"),
    ],
)
async def test_errors_have_proper_statuses_and_codes(env, tool, body, status, code) -> None:
    response = await env.call(tool, "d", "developer", **body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


async def test_invalid_json_and_bad_key(env) -> None:
    response = await env.client.post(
        "/tools/read_file/call", content=b"{", headers=env.headers("d", "developer")
    )
    assert response.json()["error"]["code"] == "invalid_json"
    wrong = await env.client.post(
        "/tools/read_file/call", json={}, headers={"Authorization": "Bearer ais_" + "x" * 43}
    )
    assert wrong.status_code == 401


async def test_refused_calls_write_one_row_and_a_run_two(env) -> None:
    await env.call("nope", "d", "developer")
    await env.call("run_command", "d", "developer", arguments={"argv": ["ls"]})
    await env.call("read_file", "d", "developer", arguments={})
    await env.call("system_info", "d", "developer")
    outcomes = [(r["action"], r["outcome"]) for r in audit_rows(env)]
    assert outcomes == [
        ("tool:<unknown>", "not_found"),
        ("tool:run_command", "denied"),
        ("tool:read_file", "invalid"),
        ("tool:system_info", "started"),
        ("tool:system_info", "ok"),
    ]


async def test_rate_limit_answers_429_with_retry_after(make_env) -> None:
    env = make_env(rate_limit_per_minute=2)
    for _ in range(2):
        assert (await env.call("system_info", "d", "developer")).status_code == 200
    limited = await env.call("system_info", "d", "developer")
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    assert (await env.call("system_info", "v", "viewer")).status_code == 200  # per user


async def test_tool_timeout_answers_504(make_env) -> None:
    env = make_env(tool_timeout=0.05)

    async def slow(ctx, args):
        await asyncio.sleep(5)

    spec = env.app.state.pipeline.tools["system_info"]
    env.app.state.pipeline.tools["system_info"] = dataclasses.replace(spec, run=slow)
    response = await env.call("system_info", "d", "developer")
    assert (response.status_code, response.json()["error"]["code"]) == (504, "tool_timeout")
    assert audit_rows(env)[-1]["outcome"] == "timeout"


async def test_unexpected_tool_crash_is_500_and_audited(env) -> None:
    async def crash(ctx, args):
        raise RuntimeError("boom")

    async def refuse(ctx, args):
        raise ToolError("nope", code="x", status=400)

    pipeline = env.app.state.pipeline
    pipeline.tools["system_info"] = dataclasses.replace(pipeline.tools["system_info"], run=crash)
    response = await env.call("system_info", "d", "developer")
    assert (response.status_code, response.json()["error"]["code"]) == (500, "tool_failed")
    assert "boom" not in response.text
    pipeline.tools["list_files"] = dataclasses.replace(pipeline.tools["list_files"], run=refuse)
    assert (await env.call("list_files", "d", "developer")).status_code == 400


async def test_failed_audit_write_fails_the_call(env) -> None:
    env.db.connection().execute("DROP TABLE audit_log")
    response = await env.call("system_info", "d", "developer")
    assert (response.status_code, response.json()["error"]["code"]) == (503, "audit_unavailable")


async def test_mcp_endpoint_requires_a_key(env) -> None:
    response = await env.client.post("/mcp", json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_tool_errors_extra_fields_reach_the_http_body() -> None:
    partial = {"stdout": "step 1 done\n", "stderr": "", "truncated": False}
    error = CallError(504, "command_timeout", "killed", extra={"partial_output": partial})
    response = error_response(api_error(error))
    assert response.status_code == 504
    assert json.loads(response.body)["error"] == {
        "message": "killed",
        "type": "server_error",
        "code": "command_timeout",
        "param": None,
        "partial_output": partial,
    }


async def test_openapi_declares_the_bodies_the_routes_read(env) -> None:
    """The call and decision routes read their JSON bodies themselves; the OpenAPI document
    still declares them (optional objects with only the keys they accept), so clients and
    schemathesis know what to send."""
    spec = (await env.client.get("/openapi.json")).json()

    def body(path: str) -> dict:
        request = spec["paths"][path]["post"]["requestBody"]
        assert request["required"] is False
        schema = request["content"]["application/json"]["schema"]
        assert schema["additionalProperties"] is False
        return schema["properties"]

    assert set(body("/tools/{name}/call")) == {"arguments", "approval_id"}
    assert set(body("/approvals/{approval_id}/approve")) == {"reason"}
    assert set(body("/approvals/{approval_id}/reject")) == {"reason"}
    assert "requestBody" not in spec["paths"]["/approvals/{approval_id}/cancel"]["post"]
    headers = env.headers("ada", "admin")
    unknown = await env.client.post(
        "/tools/list_files/call", json={"argument": {}}, headers=headers
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "invalid_body"
