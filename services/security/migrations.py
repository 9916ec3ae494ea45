"""Versioned schema migrations, applied by one runner, and the seed data.

Add a migration by appending to ``MIGRATIONS`` with the next version; never edit
one that has shipped. ``migrate`` is idempotent and runs at every service start
and from ``ai-suite db migrate``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from services.security.db import Database
from services.security.policy import ROLES, all_permissions, default_grants


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial security schema",
        """
        CREATE TABLE roles (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE permissions (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            sensitivity TEXT NOT NULL
                CHECK (sensitivity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
            description TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE role_permissions (
            role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
            permission_id INTEGER NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,
            requires_approval INTEGER NOT NULL DEFAULT 0 CHECK (requires_approval IN (0, 1)),
            PRIMARY KEY (role_id, permission_id)
        );
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role_id INTEGER NOT NULL REFERENCES roles(id),
            created_at TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
        );
        CREATE TABLE api_keys (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name TEXT NOT NULL DEFAULT '',
            prefix TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            revoked_at TEXT
        );
        CREATE INDEX api_keys_prefix ON api_keys(prefix);
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts TEXT NOT NULL,
            request_id TEXT,
            user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
            user_name TEXT,
            action TEXT NOT NULL,
            resource TEXT,
            outcome TEXT NOT NULL,
            status INTEGER,
            duration_ms REAL,
            details TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_ts ON audit_log(ts);
        CREATE INDEX audit_log_request ON audit_log(request_id);
        CREATE TABLE approval_requests (
            id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            tool TEXT NOT NULL,
            args_hash TEXT NOT NULL,
            args_summary TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL CHECK (status IN
                ('pending', 'approved', 'rejected', 'expired', 'cancelled', 'executed')),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            decided_at TEXT,
            decided_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
            reason TEXT,
            executed_at TEXT
        );
        CREATE INDEX approval_requests_status ON approval_requests(status, expires_at);
        """,
    ),
    # Caches of keys and grants must notice changes to those tables only:
    # PRAGMA data_version also moves on every audit write, which would empty
    # them on every request. A random token (not a counter) also changes when
    # a test restores the file from a template, whatever the template held.
    Migration(
        2,
        "security_version token bumped by every change to keys, users and grants",
        """
        CREATE TABLE security_version (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            token TEXT NOT NULL
        );
        INSERT INTO security_version (id, token) VALUES (1, lower(hex(randomblob(8))));
        CREATE TRIGGER users_insert_bumps_version AFTER INSERT ON users
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER users_update_bumps_version AFTER UPDATE ON users
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER users_delete_bumps_version AFTER DELETE ON users
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER roles_insert_bumps_version AFTER INSERT ON roles
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER roles_update_bumps_version AFTER UPDATE ON roles
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER roles_delete_bumps_version AFTER DELETE ON roles
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER permissions_insert_bumps_version AFTER INSERT ON permissions
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER permissions_update_bumps_version AFTER UPDATE ON permissions
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER permissions_delete_bumps_version AFTER DELETE ON permissions
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER role_permissions_insert_bumps_version AFTER INSERT ON role_permissions
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER role_permissions_update_bumps_version AFTER UPDATE ON role_permissions
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER role_permissions_delete_bumps_version AFTER DELETE ON role_permissions
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER api_keys_insert_bumps_version AFTER INSERT ON api_keys
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER api_keys_update_bumps_version AFTER UPDATE ON api_keys
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        CREATE TRIGGER api_keys_delete_bumps_version AFTER DELETE ON api_keys
        BEGIN
            UPDATE security_version SET token = lower(hex(randomblob(8)));
        END;
        """,
    ),
    # Audit that survives kill -9 (issue 11): a tool call writes an intent row
    # (outcome 'started') before it runs and an outcome row after, both carrying the
    # call's id. Calls still running are listed in audit_open_calls with the process
    # that runs them, so the recovery pass at start reads a handful of rows instead of
    # scanning the whole log for intents without an outcome.
    Migration(
        3,
        "audit_log.call_id links a tool call's intent and outcome rows; audit_open_calls",
        """
        ALTER TABLE audit_log ADD COLUMN call_id TEXT;
        CREATE INDEX audit_log_call ON audit_log(call_id) WHERE call_id IS NOT NULL;
        CREATE TABLE audit_open_calls (
            call_id TEXT PRIMARY KEY,
            intent_id INTEGER NOT NULL REFERENCES audit_log(id),
            owner_pid INTEGER NOT NULL,
            owner_started REAL NOT NULL,
            owner_namespace TEXT NOT NULL DEFAULT '',
            owner_service TEXT NOT NULL DEFAULT '',
            started_at TEXT NOT NULL
        );
        """,
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def utcnow() -> str:
    """Timestamps are always UTC ISO-8601 (the predecessor mixed timezones)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def current_version(db: Database) -> int:
    conn = db.connection()
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])


def migrate(db: Database) -> list[Migration]:
    """Apply pending migrations, then (re)seed roles, permissions and grants.

    Each migration runs in its own write transaction, so two processes starting
    at once apply it exactly once: the second sees the version and skips.
    """
    applied: list[Migration] = []
    current_version(db)  # creates the bookkeeping table
    for migration in MIGRATIONS:
        with db.transaction() as conn:
            row = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            ).fetchone()
            if row:
                continue
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utcnow()),
            )
            applied.append(migration)
    seed(db)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a script into statements (executescript() would COMMIT our transaction).

    ``sqlite3.complete_statement`` knows that a trigger's ``BEGIN ... END`` block
    holds semicolons of its own.
    """
    statements: list[str] = []
    current = ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip().removesuffix(";").strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current.strip()[:80]!r}")
    return [statement for statement in statements if statement]


def seed(db: Database) -> None:
    """Make roles, permissions and grants match :mod:`services.security.policy`.

    Idempotent, and only writes when something differs, so starting a service
    does not bump ``data_version`` (which would flush every cache).
    """
    wanted_perms = {p.name: p for p in all_permissions()}
    wanted_grants = {(g.role, g.permission): g.requires_approval for g in default_grants()}
    have_roles = {
        r["name"]: r["description"] for r in db.query("SELECT name, description FROM roles")
    }
    have_perms = {
        r["name"]: (r["sensitivity"], r["description"])
        for r in db.query("SELECT name, sensitivity, description FROM permissions")
    }
    have_grants = {
        (r["role"], r["perm"]): bool(r["requires_approval"])
        for r in db.query(
            "SELECT roles.name AS role, permissions.name AS perm, requires_approval"
            " FROM role_permissions JOIN roles ON roles.id = role_id"
            " JOIN permissions ON permissions.id = permission_id"
        )
    }
    perms_now = {n: (p.sensitivity.name, p.description) for n, p in wanted_perms.items()}
    if have_roles == ROLES and have_perms == perms_now and have_grants == wanted_grants:
        return
    with db.transaction() as conn:
        for name, description in ROLES.items():
            conn.execute(
                "INSERT INTO roles (name, description) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET description = excluded.description",
                (name, description),
            )
        for perm in wanted_perms.values():
            conn.execute(
                "INSERT INTO permissions (name, sensitivity, description) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET sensitivity = excluded.sensitivity,"
                " description = excluded.description",
                (perm.name, perm.sensitivity.name, perm.description),
            )
        conn.execute("DELETE FROM role_permissions")
        for (role, perm), needs_approval in wanted_grants.items():
            conn.execute(
                "INSERT INTO role_permissions (role_id, permission_id, requires_approval)"
                " SELECT roles.id, permissions.id, ? FROM roles, permissions"
                " WHERE roles.name = ? AND permissions.name = ?",
                (int(needs_approval), role, perm),
            )
