"""Authentication by API key and role-based permission checks, cached.

The caches hold key lookups and the role-permission table. They are flushed as
soon as ``PRAGMA data_version`` moves, so a key revoked by the CLI in another
process, or a test restoring the database, takes effect on the next request.

``cached_authenticate`` and ``cached_check`` answer on the event loop, without a
thread: they read ``data_version`` (and, when it moved, the ``security_version``
token) on the database's watch connection, which never waits (``WouldBlock``), and
answer only from a cache that is current. A revocation committed before the request
is therefore seen by it exactly as by the threaded path. On a miss, or when anything
would wait, they return None and the caller asks ``authenticate``/``check`` in a thread.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter

from services.security.db import Database, WouldBlock
from services.security.keys import hash_key, looks_like_key
from services.security.policy import ROLES

_FRESHNESS = (
    "SELECT data_version, (SELECT token FROM security_version WHERE id = 1)"
    " FROM pragma_data_version"
)
_BEARER = re.compile(r"^\s*[Bb][Ee][Aa][Rr][Ee][Rr] +([^\s]+)\s*$")


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    match = _BEARER.match(header)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Principal:
    user_id: int
    user: str
    role: str
    key_id: int
    key_prefix: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    requires_approval: bool = False


class AuthError(Exception):
    """Authentication failed; ``reason`` is safe to show to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _KeyRow:
    principal: Principal
    expires_at: str | None
    revoked_at: str | None
    disabled: bool


class AccessControl:
    def __init__(self, db: Database, registry: CollectorRegistry) -> None:
        self.db = db
        self.checks = Counter(
            "rbac_permission_checks_total",
            "Permission checks, by result (allowed, denied) and the caller's role.",
            ["result", "role"],
            registry=registry,
        )
        for role in ROLES:  # zero series, so that rate() sees the first check
            for result in ("allowed", "denied"):
                self.checks.labels(result, role)
        self._lock = threading.Lock()
        self._version: int | None = None
        self._token: str | None = None
        self._keys: dict[str, _KeyRow | None] = {}
        self._grants: dict[str, dict[str, bool]] | None = None

    def _fresh(self, *, wait: bool = True) -> None:
        # data_version moves on any commit (audit writes included); only a new
        # security_version token empties the caches. Both come from one statement, so
        # from one snapshot, and one SQLite call: on the event loop each call gives up
        # the GIL to the process's other threads, and getting it back is what costs.
        version, token = self.db.watch_query_one(_FRESHNESS, wait=wait)
        if version == self._version:
            return
        self._version = version
        if token is None or token != self._token:
            self._keys = {}
            self._grants = None
            self._token = token

    @staticmethod
    def _digest(token: str | None) -> str:
        if not token:
            raise AuthError(
                "missing API key: send 'Authorization: Bearer <key>'"
                " (create one with `ai-suite keys create`)"
            )
        if not looks_like_key(token):
            raise AuthError("invalid API key format")
        return hash_key(token)

    def authenticate(self, token: str | None) -> Principal:
        digest = self._digest(token)
        with self._lock:
            self._fresh()
            if digest not in self._keys:
                self._keys[digest] = self._load_key(digest)
            row = self._keys[digest]
        return self._verdict(row)

    def cached_authenticate(self, token: str | None) -> Principal | None:
        """``authenticate`` without waiting for anything (the event loop): the principal,
        an ``AuthError``, or None when the answer needs a thread (a key not cached yet,
        the lock or SQLite busy)."""
        digest = self._digest(token)
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self._fresh(wait=False)
            if digest not in self._keys:
                return None
            row = self._keys[digest]
        except WouldBlock:
            return None
        finally:
            self._lock.release()
        return self._verdict(row)

    def cached_authorize(
        self, token: str | None, permission: str
    ) -> tuple[Principal, Decision] | None:
        """``cached_authenticate`` and ``cached_check`` with one look at ``data_version``
        (a request's key and its permission, answered together on the event loop)."""
        digest = self._digest(token)
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self._fresh(wait=False)
            grants = self._grants
            if grants is None or digest not in self._keys:
                return None
            row = self._keys[digest]
        except WouldBlock:
            return None
        finally:
            self._lock.release()
        principal = self._verdict(row)
        return principal, self._decide(grants, principal, permission)

    @staticmethod
    def _verdict(row: _KeyRow | None) -> Principal:
        # Expiry is compared with the clock on every request, cached row or not.
        if row is None:
            raise AuthError("invalid API key")
        if row.revoked_at:
            raise AuthError("API key has been revoked")
        if row.expires_at and row.expires_at <= datetime.now(UTC).isoformat():
            raise AuthError("API key has expired")
        if row.disabled:
            raise AuthError("user is disabled")
        return row.principal

    def _load_key(self, digest: str) -> _KeyRow | None:
        row = self.db.query_one(
            "SELECT api_keys.id AS key_id, prefix, expires_at, revoked_at, users.id AS user_id,"
            " users.name AS user, users.disabled, roles.name AS role FROM api_keys"
            " JOIN users ON users.id = user_id JOIN roles ON roles.id = users.role_id"
            " WHERE key_hash = ?",
            (digest,),
        )
        if row is None:
            return None
        principal = Principal(
            row["user_id"], row["user"], row["role"], row["key_id"], row["prefix"]
        )
        return _KeyRow(principal, row["expires_at"], row["revoked_at"], bool(row["disabled"]))

    def grants(self) -> dict[str, dict[str, bool]]:
        """role -> permission -> requires_approval."""
        with self._lock:
            self._fresh()
            if self._grants is None:
                table: dict[str, dict[str, bool]] = {}
                for row in self.db.query(
                    "SELECT roles.name AS role, permissions.name AS perm, requires_approval"
                    " FROM role_permissions JOIN roles ON roles.id = role_id"
                    " JOIN permissions ON permissions.id = permission_id"
                ):
                    table.setdefault(row["role"], {})[row["perm"]] = bool(row["requires_approval"])
                self._grants = table
            return self._grants

    def _cached_grants(self) -> dict[str, dict[str, bool]] | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self._fresh(wait=False)
            return self._grants
        except WouldBlock:
            return None
        finally:
            self._lock.release()

    def check(self, principal: Principal, permission: str) -> Decision:
        return self._decide(self.grants(), principal, permission)

    def cached_check(self, principal: Principal, permission: str) -> Decision | None:
        """``check`` without waiting (the event loop), or None when it needs a thread."""
        grants = self._cached_grants()
        return None if grants is None else self._decide(grants, principal, permission)

    def _decide(
        self, grants: dict[str, dict[str, bool]], principal: Principal, permission: str
    ) -> Decision:
        granted = grants.get(principal.role, {})
        if permission in granted:
            self.checks.labels("allowed", principal.role).inc()
            return Decision(True, granted[permission])
        self.checks.labels("denied", principal.role).inc()
        return Decision(False)

    def allowed_permissions(self, principal: Principal) -> dict[str, bool]:
        return dict(self.grants().get(principal.role, {}))
