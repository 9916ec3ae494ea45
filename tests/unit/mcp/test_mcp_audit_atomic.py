"""Issue 11, "audit that survives kill -9": the crash windows, one by one, in-process.

A crash between two commits is simulated by making the second write fail (a trigger
that aborts the insert of one kind of audit row): whatever the first commit left is
what a ``kill -9`` at that point would leave. Before the fix, an approval was
``executed`` with no ``approval:executed`` row, and a tool ran with no row at all.
The real ``kill -9`` under load is tests/integration/mcp/test_mcp_audit_kill9.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os

import psutil
import pytest
from prometheus_client import CollectorRegistry

from services.mcp.approvals import ApprovalMetrics, ApprovalStore
from services.security.audit import (
    INTERRUPTED,
    AuditEntry,
    AuditLog,
    AuditWriteError,
    ProcessOwner,
)
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.rbac import AccessControl


def fail_inserts(db: Database, when: str) -> None:
    """Every audit insert matching ``when`` fails, as a full disk would fail it."""
    with db.transaction() as conn:
        conn.execute(
            "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log"
            f" WHEN {when} BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )


def rows(db: Database, where: str = "1=1", params: tuple = ()) -> list[dict]:
    return [dict(r) for r in db.query(f"SELECT * FROM audit_log WHERE {where} ORDER BY id", params)]


async def approved_write(env, content: str = "x") -> tuple[dict, str]:
    arguments = {"path": "out.txt", "content": content}
    pending = await env.call("write_file", "d", "developer", arguments=arguments)
    approval_id = pending.json()["approval_id"]
    approved = await env.client.post(
        f"/approvals/{approval_id}/approve", json={}, headers=env.headers("a", "admin")
    )
    assert approved.status_code == 200
    return arguments, approval_id


async def test_transition_without_its_audit_row_does_not_happen(env) -> None:
    """The finding: an approval `executed` with no audit row and its command never ran."""
    arguments, approval_id = await approved_write(env)
    fail_inserts(env.db, "NEW.action = 'approval:executed'")
    response = await env.call(
        "write_file", "d", "developer", arguments=arguments, approval_id=approval_id
    )
    assert (response.status_code, response.json()["error"]["code"]) == (503, "audit_unavailable")
    # Before: status 'executed', no approval:executed row. Now nothing changed at all.
    status = env.db.query_one("SELECT status FROM approval_requests WHERE id = ?", (approval_id,))
    assert status[0] == "approved"
    assert not (env.workspace / "out.txt").exists()
    assert rows(env.db, "outcome = 'started'") == []

    env.db.connection().execute("DROP TRIGGER fail_audit")
    ran = await env.call(
        "write_file", "d", "developer", arguments=arguments, approval_id=approval_id
    )
    assert ran.status_code == 200  # the approval is still usable, once


async def test_a_tool_that_ran_always_has_its_intent_row(env) -> None:
    """The finding: a command ran with no tool row (the only row came after it)."""
    arguments, approval_id = await approved_write(env, "ran")
    fail_inserts(env.db, "NEW.action = 'tool:write_file' AND NEW.outcome = 'ok'")
    response = await env.call(
        "write_file", "d", "developer", arguments=arguments, approval_id=approval_id
    )
    assert response.json()["error"]["code"] == "audit_unavailable"
    assert (env.workspace / "out.txt").read_text() == "ran"  # it did run ...
    intent = rows(env.db, "action = 'tool:write_file' AND outcome = 'started'")
    assert len(intent) == 1  # ... and its intent row says so, with the approval it used
    assert json.loads(intent[0]["details"])["approval_id"] == approval_id
    assert rows(env.db, "action = 'approval:executed' AND resource = ?", (approval_id,))
    # Still open: only a recovery pass after this process is gone may close it.
    assert env.app.state.audit.open_calls() == 1


async def test_no_intent_row_means_the_tool_does_not_run(env) -> None:
    fail_inserts(env.db, "NEW.outcome = 'started'")
    (env.workspace / "a.txt").write_text("hello")
    response = await env.call("read_file", "d", "developer", arguments={"path": "a.txt"})
    assert (response.status_code, response.json()["error"]["code"]) == (503, "audit_unavailable")
    assert rows(env.db) == []
    assert env.app.state.audit.open_calls() == 0


def dead_owner() -> ProcessOwner:
    # Our own pid with another start time: a pid reused by a new process.
    me = ProcessOwner.current()
    return dataclasses.replace(me, started=me.started - 1000)


def open_call(audit: AuditLog, call_id: str, owner: ProcessOwner) -> None:
    with audit.transaction() as tx:
        tx.begin_call(
            AuditEntry(
                "tool:run_command",
                "started",
                user="dev",
                resource="run_command",
                details={"arguments": {"argv": ["sleep", "60"]}},
                call_id=call_id,
            ),
            owner,
        )


def test_recovery_closes_calls_of_dead_processes_only_once(db: Database) -> None:
    registry = CollectorRegistry()
    audit = AuditLog(db, registry)
    parent = psutil.Process(os.getppid())
    open_call(audit, "call_dead", dead_owner())
    me = ProcessOwner.current()
    alive = dataclasses.replace(me, pid=parent.pid, started=parent.create_time())
    open_call(audit, "call_alive", alive)
    open_call(audit, "call_mine", ProcessOwner.current())

    closed = audit.recover_interrupted()
    assert [row["call_id"] for row in closed] == ["call_dead"]
    outcome = rows(db, "call_id = 'call_dead' AND outcome != 'started'")
    assert [(r["action"], r["outcome"], r["user_name"]) for r in outcome] == [
        ("tool:run_command", INTERRUPTED, "dev")
    ]
    details = json.loads(outcome[0]["details"])
    assert "unknown" in details["note"]
    assert details["arguments"] == {"argv": ["sleep", "60"]}
    assert registry.get_sample_value("audit_recovered_calls_total") == 1.0

    assert audit.recover_interrupted() == []  # idempotent
    assert audit.open_calls() == 2
    assert registry.get_sample_value("audit_recovered_calls_total") == 1.0

    # The owner of a closed call cannot add a second, contradicting outcome.
    with pytest.raises(AuditWriteError, match="no open intent row"), audit.transaction() as tx:
        tx.end_call(AuditEntry("tool:run_command", "ok", call_id="call_dead"))
    assert len(rows(db, "call_id = 'call_dead'")) == 2


async def test_the_mcp_server_recovers_before_serving(env, make_env) -> None:
    open_call(env.app.state.audit, "call_before_restart", dead_owner())
    restarted = make_env()  # create_app (open_security) runs the pass before serving
    outcome = rows(env.db, "call_id = 'call_before_restart' AND outcome = ?", (INTERRUPTED,))
    assert len(outcome) == 1
    metrics = (await restarted.client.get("/metrics")).text
    assert "audit_recovered_calls_total 1.0" in metrics


def test_approval_transitions_commit_with_their_rows(db: Database) -> None:
    registry = CollectorRegistry()
    audit = AuditLog(db, registry)
    store = ApprovalStore(db, audit, ApprovalMetrics(registry, db), ttl_seconds=3600)
    access, keys = AccessControl(db, registry), KeyStore(db)
    dev = access.authenticate(keys.create_key("dev", "developer").key)
    admin = access.authenticate(keys.create_key("boss", "admin").key)
    created = store.create(dev, "write_file", "h1", {"path": "a"})
    fail_inserts(db, "NEW.action = 'approval:approved'")
    with pytest.raises(AuditWriteError):
        store.approve(created.id, admin, "ok", allow_self=False)
    assert store.get(created.id).status == "pending"
    # Counted only after a commit: the refused transition is not in the metric.
    assert registry.get_sample_value("approval_requests_total", {"status": "approved"}) == 0.0
    assert registry.get_sample_value("audit_write_failures_total") == 1.0

    db.connection().execute("DROP TRIGGER fail_audit")
    fail_inserts(db, "NEW.action = 'approval:requested'")
    with pytest.raises(AuditWriteError):
        store.create(dev, "write_file", "h2", {"path": "b"})
    assert [a.args_hash for a in store.list()] == ["h1"]  # no request without its row


def test_calls_of_another_pid_namespace_are_closed_only_by_their_own_service(
    db: Database,
) -> None:
    """Compose runs each service in its own container (PID namespace) on one data
    volume: a pid from there means nothing here. The gateway starting must not close
    a call the MCP container is running; a new MCP container closes the old one's."""
    here = ProcessOwner.current("mcp")
    there = ProcessOwner(here.pid, here.started, "pid:[1]", "mcp")  # alive-looking pid
    audit = AuditLog(db, CollectorRegistry(), service="gateway")
    open_call(audit, "call_other_container", there)
    assert audit.recover_interrupted() == []
    assert audit.open_calls() == 1
    restarted_mcp = AuditLog(db, CollectorRegistry(), service="mcp")
    closed = restarted_mcp.recover_interrupted()
    assert [row["call_id"] for row in closed] == ["call_other_container"]


async def test_a_cancelled_call_gets_its_outcome_row(env) -> None:
    """An MCP client's cancel (or a shutdown) stops the tool; its intent row is closed."""
    running = asyncio.Event()

    async def slow(ctx, args):
        running.set()
        await asyncio.sleep(30)

    pipeline = env.app.state.pipeline
    pipeline.tools["system_info"] = dataclasses.replace(pipeline.tools["system_info"], run=slow)
    principal = pipeline.access.authenticate(env.key("d", "developer"))
    task = asyncio.create_task(pipeline.call(principal, "system_info", {}))
    await running.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    found = rows(env.db, "action = 'tool:system_info'")
    assert [(r["outcome"], r["status"]) for r in found] == [("started", None), ("cancelled", 499)]
    assert found[0]["call_id"] == found[1]["call_id"]
    assert env.app.state.audit.open_calls() == 0


async def test_the_sweeper_closes_calls_of_a_process_that_died_meanwhile(env) -> None:
    """Two MCP processes on one database: one dies and is not restarted; the other
    closes its calls at the next sweep instead of waiting for a restart."""
    open_call(env.app.state.audit, "call_of_a_dead_peer", dead_owner())
    assert await env.app.state.sweeper.recover_once() == 1
    assert await env.app.state.sweeper.recover_once() == 0
    assert rows(env.db, "call_id = 'call_of_a_dead_peer' AND outcome = ?", (INTERRUPTED,))
