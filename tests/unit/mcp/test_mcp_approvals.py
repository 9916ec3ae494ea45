"""The approval state machine: every transition once, every refusal with its own code."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from services.mcp.approvals import (
    ApprovalMetrics,
    ApprovalRefused,
    ApprovalStore,
    ApprovalSweeper,
)
from services.security.audit import AuditLog
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.rbac import AccessControl, Principal


@pytest.fixture
def setup(db: Database):
    registry = CollectorRegistry()
    audit = AuditLog(db, registry)
    store = ApprovalStore(db, audit, ApprovalMetrics(registry, db), ttl_seconds=3600)
    access = AccessControl(db, registry)
    keys = KeyStore(db)

    def principal(user: str, role: str) -> Principal:
        return access.authenticate(keys.create_key(user, role).key)

    return store, registry, principal


def count(registry: CollectorRegistry, status: str) -> float:
    return registry.get_sample_value("approval_requests_total", {"status": status}) or 0.0


def audit_actions(db: Database) -> list[str]:
    return [row[0] for row in db.query("SELECT action FROM audit_log ORDER BY id")]


def test_request_approve_execute_then_replay_is_refused(setup, db) -> None:
    store, registry, principal = setup
    dev, admin = principal("dev", "developer"), principal("boss", "admin")
    created = store.create(dev, "write_file", "h1", {"path": "a"})
    assert created.status == "pending"
    assert registry.get_sample_value("approvals_pending") == 1
    approved = store.approve(created.id, admin, "ok", allow_self=False)
    assert (approved.status, approved.decided_by, approved.reason) == ("approved", "boss", "ok")
    assert approved.expires_at >= created.expires_at  # a fresh window to use it
    used = store.consume(created.id, dev, "write_file", "h1")
    assert used.status == "executed"
    assert used.executed_at
    with pytest.raises(ApprovalRefused) as info:
        store.consume(created.id, dev, "write_file", "h1")
    assert (info.value.status, info.value.code) == (409, "approval_already_used")
    for status in ("requested", "approved", "executed"):
        assert count(registry, status) == 1
    assert registry.get_sample_value("approval_wait_seconds_count") == 1
    assert registry.get_sample_value("approvals_pending") == 0
    assert audit_actions(db) == ["approval:requested", "approval:approved", "approval:executed"]


@pytest.mark.parametrize(
    ("tool", "args_hash", "who", "status", "code"),
    [
        ("write_file", "h1", "other", 403, "approval_other_user"),
        ("git_commit", "h1", "dev", 409, "approval_tool_mismatch"),
        ("write_file", "h2", "dev", 409, "approval_arguments_mismatch"),
    ],
)
def test_mismatches_are_refused_without_using_the_approval(
    setup, tool, args_hash, who, status, code
) -> None:
    store, _, principal = setup
    dev, admin, other = (
        principal("dev", "developer"),
        principal("boss", "admin"),
        principal("other", "developer"),
    )
    created = store.create(dev, "write_file", "h1", {})
    store.approve(created.id, admin, None, allow_self=False)
    caller = {"dev": dev, "other": other}[who]
    with pytest.raises(ApprovalRefused) as info:
        store.consume(created.id, caller, tool, args_hash)
    assert (info.value.status, info.value.code) == (status, code)
    assert store.get(created.id).status == "approved"
    assert store.consume(created.id, dev, "write_file", "h1").status == "executed"


def test_pending_rejected_cancelled_and_unknown(setup) -> None:
    store, registry, principal = setup
    dev, admin = principal("dev", "developer"), principal("boss", "admin")
    pending = store.create(dev, "write_file", "h", {})
    with pytest.raises(ApprovalRefused) as info:
        store.consume(pending.id, dev, "write_file", "h")
    assert info.value.code == "approval_pending"
    rejected = store.reject(pending.id, admin, "too risky")
    assert rejected.status == "rejected"
    with pytest.raises(ApprovalRefused, match="too risky") as info:
        store.consume(pending.id, dev, "write_file", "h")
    assert info.value.code == "approval_rejected"
    with pytest.raises(ApprovalRefused) as info:
        store.approve(pending.id, admin, None, allow_self=False)
    assert (info.value.status, info.value.code) == (409, "approval_not_pending")
    second = store.create(dev, "write_file", "h", {})
    with pytest.raises(ApprovalRefused) as info:
        store.cancel(second.id, admin)
    assert info.value.code == "approval_other_user"
    assert store.cancel(second.id, dev).status == "cancelled"
    with pytest.raises(ApprovalRefused) as info:
        store.consume(second.id, dev, "write_file", "h")
    assert info.value.code == "approval_cancelled"
    with pytest.raises(ApprovalRefused) as info:
        store.consume("apr_missing", dev, "write_file", "h")
    assert (info.value.status, info.value.code) == (404, "approval_not_found")
    assert count(registry, "rejected") == count(registry, "cancelled") == 1
    assert registry.get_sample_value("approval_wait_seconds_count") == 1


def test_self_approval_is_a_policy_setting(setup) -> None:
    store, _, principal = setup
    admin = principal("boss", "admin")
    created = store.create(admin, "run_command", "h", {})
    with pytest.raises(ApprovalRefused) as info:
        store.approve(created.id, admin, None, allow_self=False)
    assert (info.value.status, info.value.code) == (403, "self_approval_forbidden")
    assert store.approve(created.id, admin, None, allow_self=True).status == "approved"


def test_expiry_is_counted_once_by_sweeper_or_use(setup, db) -> None:
    store, registry, principal = setup
    store.ttl = 0.000001
    dev, admin = principal("dev", "developer"), principal("boss", "admin")
    swept = store.create(dev, "write_file", "h", {})
    used = store.create(dev, "write_file", "h", {})
    decided = store.create(dev, "write_file", "h", {})
    with pytest.raises(ApprovalRefused) as info:
        store.consume(used.id, dev, "write_file", "h")
    assert (info.value.status, info.value.code) == (410, "approval_expired")
    with pytest.raises(ApprovalRefused) as info:
        store.approve(decided.id, admin, None, allow_self=False)
    assert info.value.code == "approval_expired"
    assert [a.id for a in store.expire_due()] == [swept.id]
    assert store.expire_due() == []
    for approval_id in (swept.id, used.id, decided.id):
        with pytest.raises(ApprovalRefused) as info:
            store.consume(approval_id, dev, "write_file", "h")
        assert info.value.code == "approval_expired"
    assert count(registry, "expired") == 3
    assert audit_actions(db).count("approval:expired") == 3


async def test_sweeper_runs_in_the_background(setup) -> None:
    store, registry, principal = setup
    store.ttl = 0.000001
    store.create(principal("dev", "developer"), "write_file", "h", {})
    sweeper = ApprovalSweeper(store, interval=0.01)
    assert await sweeper.sweep_once() == 1
    task = asyncio.create_task(sweeper.run())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert count(registry, "expired") == 1


async def test_sweeper_survives_database_errors(setup, db) -> None:
    store, _, _ = setup
    db.close()
    assert await ApprovalSweeper(store, interval=1).sweep_once() == 0


def test_listing_filters(setup) -> None:
    store, _, principal = setup
    dev, other = principal("dev", "developer"), principal("other", "developer")
    first = store.create(dev, "write_file", "h", {"path": "a"})
    store.create(other, "git_add", "h", {})
    assert [a.id for a in store.list(user_id=dev.user_id)] == [first.id]
    assert len(store.list(status="pending")) == 2
    assert store.list(status="approved") == []
    assert first.as_dict()["args_summary"] == {"path": "a"}
    # The approver sees the hash the call is bound to (redacted values stay distinguishable).
    assert first.as_dict()["args_hash"] == "h"
    assert "user_id" not in first.as_dict()


def test_on_created_hears_of_each_new_request_once_it_committed(setup, db) -> None:
    _, _, principal = setup
    registry = CollectorRegistry()
    heard: list[tuple[str, int]] = []

    def on_created(approval) -> None:
        # Committed already: a second connection sees the row.
        other = Database(db.path)
        try:
            rows = other.query("SELECT 1 FROM approval_requests WHERE id = ?", (approval.id,))
        finally:
            other.close()
        heard.append((approval.status, len(rows)))

    store = ApprovalStore(
        db,
        AuditLog(db, registry),
        ApprovalMetrics(registry, db),
        ttl_seconds=3600,
        on_created=on_created,
    )
    dev, admin = principal("dev", "developer"), principal("boss", "admin")
    created = store.create(dev, "write_file", "h1", {"path": "a"})
    store.approve(created.id, admin, None, allow_self=False)

    assert heard == [("pending", 1)]
