"""Authentication by API key, permission checks, metrics and cache invalidation."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.security.db import Database
from services.security.keys import CreatedKey, KeyStore, generate_key
from services.security.rbac import AccessControl, AuthError, Decision, Principal

ROOT = Path(__file__).resolve().parents[3]
CHECKS = "rbac_permission_checks_total"


@pytest.fixture
def dev_key(store: KeyStore) -> CreatedKey:
    return store.create_key("dev", "developer")


@pytest.fixture
def viewer_key(store: KeyStore) -> CreatedKey:
    return store.create_key("view", "viewer")


def set_column(db: Database, sql: str, *params: object) -> None:
    with db.transaction() as conn:
        conn.execute(sql, params)


# --- authenticate ----------------------------------------------------------------------------


def test_authenticate(access: AccessControl, dev_key: CreatedKey, db: Database) -> None:
    principal = access.authenticate(dev_key.key)
    user_id = db.query_one("SELECT id FROM users WHERE name = 'dev'")[0]
    assert principal == Principal(
        user_id=user_id, user="dev", role="developer", key_id=dev_key.id, key_prefix=dev_key.prefix
    )
    assert access.authenticate(dev_key.key) == principal  # cached answer is the same


@pytest.mark.parametrize("token", [None, ""])
def test_missing_key(access: AccessControl, token: str | None) -> None:
    with pytest.raises(AuthError, match="missing API key") as info:
        access.authenticate(token)
    assert "Authorization: Bearer" in info.value.reason


@pytest.mark.parametrize(
    "token",
    ["abc", "ais_short", "sk-" + "a" * 44, generate_key() + "x"],
    ids=["word", "short", "other-scheme", "too-long"],
)
def test_malformed_key(access: AccessControl, token: str) -> None:
    with pytest.raises(AuthError, match="invalid API key format"):
        access.authenticate(token)


def test_unknown_key(access: AccessControl, dev_key: CreatedKey) -> None:
    with pytest.raises(AuthError, match=r"^invalid API key$"):
        access.authenticate(generate_key())


def test_revoked_key(access: AccessControl, store: KeyStore, dev_key: CreatedKey) -> None:
    store.revoke(dev_key.prefix)
    with pytest.raises(AuthError, match="revoked"):
        access.authenticate(dev_key.key)


def test_expired_key(access: AccessControl, db: Database, store: KeyStore) -> None:
    created = store.create_key("dev", "developer", expires_at=datetime.now(UTC) + timedelta(days=1))
    assert access.authenticate(created.key).user == "dev"
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="microseconds")
    set_column(db, "UPDATE api_keys SET expires_at = ? WHERE id = ?", past, created.id)
    with pytest.raises(AuthError, match="expired"):
        access.authenticate(created.key)


def test_disabled_user(access: AccessControl, db: Database, dev_key: CreatedKey) -> None:
    access.authenticate(dev_key.key)
    set_column(db, "UPDATE users SET disabled = 1 WHERE name = 'dev'")
    with pytest.raises(AuthError, match="user is disabled"):
        access.authenticate(dev_key.key)


def test_auth_errors_never_echo_the_key(access: AccessControl, store: KeyStore) -> None:
    created = store.create_key("dev", "developer")
    store.revoke(created.prefix)
    for token in (created.key, generate_key(), created.key + "x"):
        with pytest.raises(AuthError) as info:
            access.authenticate(token)
        assert token not in str(info.value)


# --- permission checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "permission", "decision"),
    [
        ("viewer", "chat:create", Decision(True, False)),
        ("viewer", "tool:read_file", Decision(True, False)),
        ("viewer", "tool:write_file", Decision(False)),
        ("viewer", "rag:index", Decision(False)),
        ("developer", "tool:read_file", Decision(True, False)),
        ("developer", "tool:write_file", Decision(True, True)),
        ("developer", "tool:run_command", Decision(False)),
        ("developer", "keys:manage", Decision(False)),
        ("admin", "tool:run_command", Decision(True, True)),
        ("admin", "keys:manage", Decision(True, False)),
        ("admin", "no:such:permission", Decision(False)),
    ],
)
def test_check(
    access: AccessControl, store: KeyStore, role: str, permission: str, decision: Decision
) -> None:
    principal = access.authenticate(store.create_key(f"user-{role}", role).key)
    assert access.check(principal, permission) == decision


def test_check_metrics(
    access: AccessControl, registry: CollectorRegistry, dev_key: CreatedKey, viewer_key: CreatedKey
) -> None:
    dev = access.authenticate(dev_key.key)
    viewer = access.authenticate(viewer_key.key)
    access.check(dev, "tool:write_file")
    access.check(dev, "tool:read_file")
    access.check(dev, "keys:manage")
    access.check(viewer, "tool:write_file")

    def value(result: str, role: str) -> float | None:
        return registry.get_sample_value(CHECKS, {"result": result, "role": role})

    assert value("allowed", "developer") == 2.0
    assert value("denied", "developer") == 1.0
    assert value("denied", "viewer") == 1.0
    assert value("allowed", "viewer") == 0.0  # pre-created, so rate() sees the first one


def test_allowed_permissions_is_a_copy(access: AccessControl, viewer_key: CreatedKey) -> None:
    viewer = access.authenticate(viewer_key.key)
    allowed = access.allowed_permissions(viewer)
    assert allowed["chat:create"] is False
    assert "tool:write_file" not in allowed
    allowed["tool:write_file"] = False
    assert access.check(viewer, "tool:write_file").allowed is False


# --- caching ---------------------------------------------------------------------------------


def test_cached_lookups_do_not_query_the_key_table(
    access: AccessControl, db: Database, dev_key: CreatedKey
) -> None:
    principal = access.authenticate(dev_key.key)
    access.check(principal, "chat:create")
    statements: list[str] = []
    db.connection().set_trace_callback(statements.append)
    try:
        for _ in range(5):
            access.authenticate(dev_key.key)
            access.check(principal, "chat:create")
    finally:
        db.connection().set_trace_callback(None)
    assert not [s for s in statements if "api_keys" in s or "role_permissions" in s]


def test_unknown_keys_are_cached_but_new_keys_are_found(
    access: AccessControl, store: KeyStore
) -> None:
    with pytest.raises(AuthError):
        access.authenticate(generate_key())
    created = store.create_key("late", "viewer")  # a write, so the cache is flushed
    assert access.authenticate(created.key).user == "late"


def test_revocation_through_another_database_object(
    access: AccessControl, other_db: Database, dev_key: CreatedKey
) -> None:
    assert access.authenticate(dev_key.key).user == "dev"  # now cached
    KeyStore(other_db).revoke(dev_key.prefix)
    with pytest.raises(AuthError, match="revoked"):
        access.authenticate(dev_key.key)


def test_grant_change_through_another_database_object(
    access: AccessControl, other_db: Database, viewer_key: CreatedKey
) -> None:
    viewer = access.authenticate(viewer_key.key)
    assert access.check(viewer, "chat:create").allowed
    with other_db.transaction() as conn:
        conn.execute(
            "DELETE FROM role_permissions WHERE"
            " role_id = (SELECT id FROM roles WHERE name = 'viewer') AND"
            " permission_id = (SELECT id FROM permissions WHERE name = 'chat:create')"
        )
    assert not access.check(viewer, "chat:create").allowed


def test_revocation_by_another_process(
    access: AccessControl, db_path: Path, dev_key: CreatedKey
) -> None:
    assert access.authenticate(dev_key.key).user == "dev"
    code = (
        "import sys\n"
        "from services.security.db import Database\n"
        "from services.security.keys import KeyStore\n"
        "db = Database(sys.argv[1])\n"
        "print(KeyStore(db).revoke(sys.argv[2]).state)\n"
        "db.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(db_path), dev_key.prefix],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "revoked"
    with pytest.raises(AuthError, match="revoked"):
        access.authenticate(dev_key.key)


def test_concurrent_authentication(access: AccessControl, store: KeyStore) -> None:
    keys = [store.create_key(f"user{i}", "developer").key for i in range(4)]
    errors: list[BaseException] = []

    def work(key: str) -> None:
        try:
            for _ in range(50):
                principal = access.authenticate(key)
                assert access.check(principal, "tool:write_file").requires_approval
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in keys * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


# --- answers on the event loop (no thread) -----------------------------------------------------


def test_cached_answers_need_a_warm_cache(
    access: AccessControl, db: Database, dev_key: CreatedKey
) -> None:
    assert access.cached_authenticate(dev_key.key) is None  # a miss: the caller uses a thread
    principal = access.authenticate(dev_key.key)
    assert access.cached_check(principal, "tool:write_file") is None  # grants not loaded yet
    assert access.check(principal, "tool:write_file") == Decision(True, True)
    statements: list[str] = []
    db.connection().set_trace_callback(statements.append)
    try:
        assert access.cached_authenticate(dev_key.key) == principal
        assert access.cached_check(principal, "tool:write_file") == Decision(True, True)
        assert access.cached_check(principal, "keys:manage") == Decision(False)
    finally:
        db.connection().set_trace_callback(None)
    assert statements == []  # answered from the caches, nothing asked of this connection


def test_cached_answers_survive_unrelated_commits(
    access: AccessControl, other_db: Database, dev_key: CreatedKey
) -> None:
    principal = access.authenticate(dev_key.key)
    with other_db.transaction() as conn:  # moves data_version, not the security token
        conn.execute("INSERT INTO audit_log (ts, action, outcome) VALUES ('t', 'a', 'ok')")
    assert access.cached_authenticate(dev_key.key) == principal


def test_cached_path_sees_a_revocation_at_once(
    access: AccessControl, other_db: Database, dev_key: CreatedKey
) -> None:
    assert access.authenticate(dev_key.key).user == "dev"
    assert access.cached_authenticate(dev_key.key) is not None
    KeyStore(other_db).revoke(dev_key.prefix)  # committed by another connection
    # The very next inline answer must not be the cached principal: the cache is gone...
    assert access.cached_authenticate(dev_key.key) is None
    with pytest.raises(AuthError, match="revoked"):  # ...and the thread path says why
        access.authenticate(dev_key.key)
    with pytest.raises(AuthError, match="revoked"):  # now cached as revoked, inline too
        access.cached_authenticate(dev_key.key)


def test_cached_path_sees_a_grant_change_at_once(
    access: AccessControl, other_db: Database, viewer_key: CreatedKey
) -> None:
    viewer = access.authenticate(viewer_key.key)
    assert access.check(viewer, "chat:create").allowed
    with other_db.transaction() as conn:
        conn.execute(
            "DELETE FROM role_permissions WHERE"
            " role_id = (SELECT id FROM roles WHERE name = 'viewer') AND"
            " permission_id = (SELECT id FROM permissions WHERE name = 'chat:create')"
        )
    assert access.cached_check(viewer, "chat:create") is None
    assert not access.check(viewer, "chat:create").allowed


def test_cached_path_enforces_expiry_by_the_clock(
    access: AccessControl, db: Database, store: KeyStore
) -> None:
    soon = datetime.now(UTC) + timedelta(milliseconds=200)
    created = store.create_key("dev", "developer", expires_at=soon)
    assert access.authenticate(created.key).user == "dev"
    assert access.cached_authenticate(created.key) is not None
    while datetime.now(UTC) <= soon:  # no write happens: only the clock moves
        threading.Event().wait(0.02)
    with pytest.raises(AuthError, match="expired"):
        access.cached_authenticate(created.key)


def test_cached_path_never_waits_for_the_lock(access: AccessControl, dev_key: CreatedKey) -> None:
    principal = access.authenticate(dev_key.key)
    access.check(principal, "chat:create")
    with access._lock:  # a thread refreshing the caches holds it
        assert access.cached_authenticate(dev_key.key) is None
        assert access.cached_check(principal, "chat:create") is None
    assert access.cached_authenticate(dev_key.key) == principal


def test_cached_path_refuses_bad_tokens_without_a_thread(access: AccessControl) -> None:
    with pytest.raises(AuthError, match="missing API key"):
        access.cached_authenticate(None)
    with pytest.raises(AuthError, match="invalid API key format"):
        access.cached_authenticate("ais_short")


def test_cached_authorize_answers_both_at_once_and_sees_revocation(
    access: AccessControl, other_db: Database, dev_key: CreatedKey, registry: CollectorRegistry
) -> None:
    assert access.cached_authorize(dev_key.key, "chat:create") is None  # nothing cached yet
    principal = access.authenticate(dev_key.key)
    access.check(principal, "chat:create")
    assert access.cached_authorize(dev_key.key, "tool:write_file") == (
        principal,
        Decision(True, True),
    )
    assert access.cached_authorize(dev_key.key, "keys:manage") == (principal, Decision(False))
    denied = registry.get_sample_value(CHECKS, {"result": "denied", "role": "developer"})
    assert denied == 1.0  # counted like check()
    KeyStore(other_db).revoke(dev_key.prefix)
    assert access.cached_authorize(dev_key.key, "chat:create") is None
