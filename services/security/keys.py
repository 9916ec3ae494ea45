"""Users and API keys.

Keys are 256-bit random tokens shown once at creation. Only their SHA-256 is
stored (a slow password hash adds nothing for keys this long), plus a short
prefix so people can tell keys apart in listings and revoke one by prefix.

With an ``AuditLog`` (``ai-suite keys``), creating and revoking a key writes its audit
row in the same transaction as the change, so a crash keeps both or neither.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.security.audit import AuditEntry, AuditLog
from services.security.db import Database
from services.security.migrations import utcnow
from services.security.policy import ROLES

KEY_SCHEME = "ais_"
PREFIX_LENGTH = 12  # "ais_" + 8 random characters
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_KEY_SHAPE = re.compile(r"^ais_[A-Za-z0-9_-]{43}$")


class KeyStoreError(ValueError):
    """A user or key request that cannot be honoured; the message says why."""


def generate_key() -> str:
    return KEY_SCHEME + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(token: str) -> bool:
    return bool(_KEY_SHAPE.fullmatch(token))


@dataclass(frozen=True)
class CreatedKey:
    key: str
    id: int
    prefix: str
    user: str
    role: str
    expires_at: str | None


@dataclass(frozen=True)
class KeyInfo:
    id: int
    prefix: str
    name: str
    user: str
    role: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= utcnow():
            return "expired"
        return "active"


def validate_user_name(name: str) -> str:
    if not _USER_NAME.fullmatch(name):
        raise KeyStoreError(
            f"invalid user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-',"
            " starting with a letter or digit"
        )
    return name


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise KeyStoreError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    return role


class KeyStore:
    def __init__(self, db: Database, *, audit: AuditLog | None = None, actor: str = "") -> None:
        """``audit``: write ``keys:create`` / ``keys:revoke`` rows as ``actor`` (who runs
        the command); without it (test fixtures, the first admin of ``ai-suite up``)
        nothing is audited."""
        self.db = db
        self.audit = audit
        self.actor = actor or None

    @contextmanager
    def _transaction(self) -> Iterator[tuple[sqlite3.Connection, Any]]:
        if self.audit is None:
            with self.db.transaction() as conn:
                yield conn, None
        else:
            with self.audit.transaction() as tx:
                yield tx.conn, tx

    def _audit(self, tx: Any, action: str, key_id: int, details: dict[str, Any]) -> None:
        if tx is not None:
            tx.write(
                AuditEntry(
                    action=action,
                    outcome="ok",
                    user=self.actor,
                    resource=f"key:{key_id}",
                    details=details,
                )
            )

    def user_count(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM users")
        return int(row[0]) if row else 0

    def ensure_user(self, name: str, role: str) -> int:
        """The user's id, creating the user with ``role`` if it does not exist.

        An existing user keeps its role: changing roles through key creation
        would be a silent privilege change.
        """
        with self.db.transaction() as conn:
            return self._ensure_user(conn, name, role)[0]

    @staticmethod
    def _ensure_user(conn: sqlite3.Connection, name: str, role: str) -> tuple[int, bool]:
        """(user id, whether it was created now), inside the caller's transaction."""
        validate_user_name(name)
        validate_role(role)
        row = conn.execute(
            "SELECT users.id, roles.name AS role FROM users JOIN roles ON roles.id = role_id"
            " WHERE users.name = ?",
            (name,),
        ).fetchone()
        if row:
            if row["role"] != role:
                raise KeyStoreError(
                    f"user {name!r} already exists with role {row['role']!r}, not {role!r}"
                )
            return int(row["id"]), False
        cur = conn.execute(
            "INSERT INTO users (name, role_id, created_at)"
            " SELECT ?, id, ? FROM roles WHERE name = ?",
            (name, utcnow(), role),
        )
        if cur.rowcount != 1:
            raise KeyStoreError(f"role {role!r} is not in the database; run `ai-suite db migrate`")
        return int(cur.lastrowid or 0), True

    def create_key(
        self, user: str, role: str, *, name: str = "", expires_at: datetime | None = None
    ) -> CreatedKey:
        if expires_at is not None and expires_at.tzinfo is None:
            raise KeyStoreError("expiry must include a timezone, e.g. datetime.now(UTC)")
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise KeyStoreError("expiry must be in the future")
        key = generate_key()
        expires = (
            expires_at.astimezone(UTC).isoformat(timespec="microseconds") if expires_at else None
        )
        # The user, the key and the audit row: one transaction.
        with self._transaction() as (conn, tx):
            user_id, new_user = self._ensure_user(conn, user, role)
            cur = conn.execute(
                "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, name, key[:PREFIX_LENGTH], hash_key(key), utcnow(), expires),
            )
            key_id = int(cur.lastrowid or 0)
            self._audit(
                tx,
                "keys:create",
                key_id,
                {
                    "user": user,
                    "role": role,
                    "name": name,
                    "expires_at": expires,
                    "user_created": new_user,
                },
            )
        return CreatedKey(key, key_id, key[:PREFIX_LENGTH], user, role, expires)

    def list_keys(self, *, user: str | None = None) -> list[KeyInfo]:
        sql = (
            "SELECT api_keys.id, prefix, api_keys.name, users.name AS user, roles.name AS role,"
            " api_keys.created_at, expires_at, revoked_at FROM api_keys"
            " JOIN users ON users.id = user_id JOIN roles ON roles.id = users.role_id"
        )
        params: tuple = ()
        if user:
            sql += " WHERE users.name = ?"
            params = (user,)
        rows = self.db.query(sql + " ORDER BY api_keys.id", params)
        return [KeyInfo(**dict(row)) for row in rows]

    def revoke(self, identifier: str) -> KeyInfo:
        """Revoke one key by id or prefix; ambiguous prefixes are refused."""
        column = "id" if identifier.isdigit() else "prefix"
        matches = [k for k in self.list_keys() if str(getattr(k, column)) == identifier]
        if not matches:
            raise KeyStoreError(
                f"no API key with {column} {identifier!r}; see `ai-suite keys list`"
            )
        if len(matches) > 1:
            raise KeyStoreError(f"prefix {identifier!r} matches {len(matches)} keys; revoke by id")
        key = matches[0]
        if key.revoked_at:
            raise KeyStoreError(
                f"key {key.prefix} (id {key.id}) was already revoked at {key.revoked_at}"
            )
        try:
            with self._transaction() as (conn, tx):
                conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (utcnow(), key.id))
                self._audit(tx, "keys:revoke", key.id, {"user": key.user, "role": key.role})
        except sqlite3.Error as exc:  # pragma: no cover - surfaced with context
            raise KeyStoreError(f"could not revoke key {key.prefix}: {exc}") from exc
        return next(k for k in self.list_keys() if k.id == key.id)
