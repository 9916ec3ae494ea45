"""Schema migrations and the seed that mirrors services.security.policy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.security.db import Database
from services.security.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    current_version,
    migrate,
    seed,
    utcnow,
)
from services.security.policy import (
    ACTIONS,
    ADMIN_ONLY_ACTIONS,
    ROLES,
    TOOL_SENSITIVITY,
    Role,
    Sensitivity,
    all_permissions,
    default_grants,
    tool_permission,
)

TABLES = {
    "users",
    "roles",
    "permissions",
    "role_permissions",
    "api_keys",
    "audit_log",
    "approval_requests",
    "schema_migrations",
}

GRANTS_SQL = (
    "SELECT roles.name AS role, permissions.name AS perm, permissions.sensitivity AS level,"
    " requires_approval FROM role_permissions JOIN roles ON roles.id = role_id"
    " JOIN permissions ON permissions.id = permission_id"
)


def grants(db: Database) -> dict[str, dict[str, tuple[str, int]]]:
    """role -> permission -> (sensitivity, requires_approval)."""
    table: dict[str, dict[str, tuple[str, int]]] = {}
    for row in db.query(GRANTS_SQL):
        table.setdefault(row["role"], {})[row["perm"]] = (row["level"], row["requires_approval"])
    return table


def tools_of(role_grants: dict[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    return {p: v for p, v in role_grants.items() if p.startswith("tool:")}


def tools_at(level: Sensitivity) -> set[str]:
    return {tool_permission(t) for t, s in TOOL_SENSITIVITY.items() if s == level}


@pytest.fixture
def fresh(db_path: Path) -> Iterator[Database]:
    database = Database(db_path)
    yield database
    database.close()


def test_fresh_database_is_at_version_zero(fresh: Database) -> None:
    assert current_version(fresh) == 0


def test_migrate_applies_once(fresh: Database) -> None:
    applied = migrate(fresh)
    assert [m.version for m in applied] == [m.version for m in MIGRATIONS]
    assert migrate(fresh) == []
    assert migrate(fresh) == []
    assert current_version(fresh) == LATEST_VERSION


def test_schema_migrations_rows(db: Database) -> None:
    rows = db.query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]
    for row in rows:
        applied = datetime.fromisoformat(row["applied_at"])
        assert applied.utcoffset().total_seconds() == 0
        assert abs((datetime.now(UTC) - applied).total_seconds()) < 60


def test_migration_versions_are_consecutive() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_all_tables_exist(db: Database) -> None:
    names = {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names >= TABLES


def test_utcnow_is_utc_iso() -> None:
    now = datetime.fromisoformat(utcnow())
    assert now.tzinfo is not None
    assert now.utcoffset().total_seconds() == 0


def test_roles_match_policy(db: Database) -> None:
    rows = db.query("SELECT name, description FROM roles")
    assert {r["name"]: r["description"] for r in rows} == ROLES


def test_permissions_match_policy(db: Database) -> None:
    rows = db.query("SELECT name, sensitivity, description FROM permissions")
    have = {r["name"]: (r["sensitivity"], r["description"]) for r in rows}
    assert have == {p.name: (p.sensitivity.name, p.description) for p in all_permissions()}


def test_every_tool_is_seeded_with_its_level(db: Database) -> None:
    query = "SELECT name, sensitivity FROM permissions"
    rows = {r["name"]: r["sensitivity"] for r in db.query(query)}
    for tool, level in TOOL_SENSITIVITY.items():
        assert rows[tool_permission(tool)] == level.name
    for action in ACTIONS:
        assert rows[action.name] == action.sensitivity.name


def test_grants_match_default_grants(db: Database) -> None:
    have = {(r["role"], r["perm"]): bool(r["requires_approval"]) for r in db.query(GRANTS_SQL)}
    assert have == {(g.role, g.permission): g.requires_approval for g in default_grants()}


def test_viewer_grants(db: Database) -> None:
    viewer = grants(db)[Role.VIEWER]
    tools = tools_of(viewer)
    assert set(tools) == tools_at(Sensitivity.LOW)
    assert {level for level, _ in tools.values()} == {"LOW"}
    assert all(approval == 0 for _, approval in viewer.values())
    assert {"models:read", "chat:create", "rag:query"} <= set(viewer)
    assert "rag:index" not in viewer


def test_developer_grants(db: Database) -> None:
    developer = grants(db)[Role.DEVELOPER]
    tools = tools_of(developer)
    high = tools_at(Sensitivity.HIGH)
    critical = tools_at(Sensitivity.CRITICAL)
    assert high
    assert critical
    assert high <= set(tools)
    assert all(tools[p][1] == 1 for p in high)
    assert not critical & set(developer)
    assert all(approval == 0 for level, approval in tools.values() if level in {"LOW", "MEDIUM"})
    assert developer["rag:index"] == ("MEDIUM", 0)


def test_admin_grants(db: Database) -> None:
    admin = grants(db)[Role.ADMIN]
    assert set(admin) == {p.name for p in all_permissions()}
    for perm, (level, approval) in admin.items():
        if perm.startswith("tool:"):
            assert approval == (1 if level in {"HIGH", "CRITICAL"} else 0), perm
        else:
            assert approval == 0, perm  # actions never need approval


@pytest.mark.parametrize("action", sorted(ADMIN_ONLY_ACTIONS))
def test_admin_only_actions(db: Database, action: str) -> None:
    assert action in {"keys:manage", "approvals:decide", "audit:read", "rag:manage"}
    holders = {role for role, perms in grants(db).items() if action in perms}
    assert holders == {Role.ADMIN}


def test_seed_does_not_write_when_nothing_changed(db: Database, other_db: Database) -> None:
    before = other_db.data_version()
    seed(db)
    migrate(db)
    assert other_db.data_version() == before


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE role_permissions SET requires_approval = 0 WHERE"
        " role_id = (SELECT id FROM roles WHERE name = 'developer') AND"
        " permission_id = (SELECT id FROM permissions WHERE name = 'tool:write_file')",
        "INSERT INTO role_permissions (role_id, permission_id, requires_approval)"
        " SELECT roles.id, permissions.id, 0 FROM roles, permissions"
        " WHERE roles.name = 'viewer' AND permissions.name = 'tool:run_command'",
        "DELETE FROM role_permissions WHERE"
        " permission_id = (SELECT id FROM permissions WHERE name = 'keys:manage')",
        "UPDATE permissions SET sensitivity = 'LOW' WHERE name = 'tool:run_command'",
        "UPDATE roles SET description = 'changed' WHERE name = 'admin'",
        "DELETE FROM permissions WHERE name = 'audit:read'",
    ],
    ids=["approval-dropped", "grant-added", "grant-removed", "level", "role-desc", "perm-gone"],
)
def test_seed_repairs_tampering(db: Database, other_db: Database, tamper: str) -> None:
    expected = grants(db)
    with other_db.transaction() as conn:
        conn.execute(tamper)
    assert grants(db) != expected or tamper.startswith("UPDATE roles")
    before = other_db.data_version()
    assert migrate(db) == []
    assert grants(db) == expected
    assert {r["name"]: r["description"] for r in db.query("SELECT * FROM roles")} == ROLES
    assert other_db.data_version() != before  # the repair is a write others notice


def test_seed_keeps_user_and_key_rows(db: Database) -> None:
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO users (name, role_id, created_at)"
            " SELECT 'alice', id, '2024-01-01' FROM roles WHERE name = 'developer'"
        )
        conn.execute("UPDATE role_permissions SET requires_approval = 0")
    migrate(db)
    row = db.query_one(
        "SELECT roles.name FROM users JOIN roles ON roles.id = role_id WHERE users.name = 'alice'"
    )
    assert row[0] == Role.DEVELOPER


def _migrate_in_thread(
    path: Path, barrier: threading.Barrier, results: list[int], errors: list[BaseException]
) -> None:
    database = Database(path)
    try:
        barrier.wait(5)
        results.append(len(migrate(database)))
    except BaseException as exc:
        errors.append(exc)
    finally:
        database.close()


def test_concurrent_migrate_from_two_databases(tmp_path: Path) -> None:
    # Repeated on fresh files: the race on a new file only shows up some of the time.
    for attempt in range(8):
        path = tmp_path / f"race-{attempt}.db"
        barrier = threading.Barrier(2)
        results: list[int] = []
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_migrate_in_thread, args=(path, barrier, results, errors))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == [], f"attempt {attempt}: {errors!r}"
        # Each migration is applied exactly once, by one thread or the other.
        assert sum(results) == len(MIGRATIONS)
        check = Database(path)
        try:
            versions = check.query("SELECT version FROM schema_migrations")
            assert [r["version"] for r in versions] == [m.version for m in MIGRATIONS]
            assert len(check.query(GRANTS_SQL)) == len(default_grants())
        finally:
            check.close()
