"""The auth dependencies end to end in one app: 401, 403 (audited), 200, 503."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from services.core.app import build_service_app
from services.core.context import REQUEST_ID_HEADER, request_id_var, user_var
from services.core.errors import install_error_handlers
from services.security.bootstrap import Security, install_security, open_security
from services.security.db import Database
from services.security.http_auth import requires
from services.security.keys import KeyStore, generate_key, hash_key
from services.security.rbac import Principal

PERMISSION = "tool:write_file"
requires_write = requires(PERMISSION)


@dataclass
class Env:
    security: Security
    registry: CollectorRegistry
    store: KeyStore
    path: Path
    keys: dict[str, str]
    app: FastAPI


@pytest.fixture
def env(security_db_path: Path) -> Iterator[Env]:
    parts = build_service_app("svc")
    install_error_handlers(parts.app)
    path = security_db_path
    security = open_security(Database(path), parts.registry)
    parts.checks.append(install_security(parts.app, security, parts.registry))

    @parts.app.post("/tools/write_file")
    async def write_file(principal: Annotated[Principal, Depends(requires_write)]) -> dict:
        return {
            "user": principal.user,
            "role": principal.role,
            "request_id": request_id_var.get(),
            "context_user": user_var.get(),
        }

    store = KeyStore(security.db)
    keys = {
        role: store.create_key(f"{role}-user", role).key
        for role in ("viewer", "developer", "admin")
    }
    yield Env(security, parts.registry, store, path, keys, parts.app)
    security.db.close()


@pytest.fixture
async def client(
    env: Env, client_for: Callable[..., httpx.AsyncClient]
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(env.app) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def audit_rows(env: Env) -> list[dict]:
    return [dict(r) for r in env.security.db.query("SELECT * FROM audit_log ORDER BY id")]


def failures(env: Env, reason: str) -> float | None:
    return env.registry.get_sample_value("auth_failures_total", {"reason": reason})


def test_dependency_name() -> None:
    assert requires_write.__name__ == "requires_tool_write_file"


@pytest.mark.parametrize(
    ("headers", "reason", "message"),
    [
        ({}, "missing", "missing API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing", "missing API key"),
        ({"Authorization": "Bearer not-a-key"}, "format", "invalid API key format"),
        (bearer(generate_key()), "invalid", "invalid API key"),
    ],
    ids=["no-header", "basic", "malformed", "unknown"],
)
async def test_401(
    env: Env,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    reason: str,
    message: str,
) -> None:
    response = await client.post("/tools/write_file", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["message"].startswith(message)
    assert body["error"]["param"] is None
    assert failures(env, reason) == 1.0
    assert audit_rows(env) == []


@pytest.mark.parametrize("state", ["revoked", "expired", "disabled"])
async def test_401_for_dead_keys(env: Env, client: httpx.AsyncClient, state: str) -> None:
    key = env.keys["developer"]
    assert (await client.post("/tools/write_file", headers=bearer(key))).status_code == 200
    with env.security.db.transaction() as conn:
        if state == "revoked":
            conn.execute("UPDATE api_keys SET revoked_at = '2000-01-01T00:00:00+00:00'")
        elif state == "expired":
            conn.execute("UPDATE api_keys SET expires_at = '2000-01-01T00:00:00+00:00'")
        else:
            conn.execute("UPDATE users SET disabled = 1")
    response = await client.post("/tools/write_file", headers=bearer(key))
    assert response.status_code == 401
    assert state in response.json()["error"]["message"]
    assert failures(env, state) == 1.0


async def test_cached_requests_take_no_thread_and_see_a_revocation_at_once(
    env: Env, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = env.keys["developer"]
    access = env.security.access
    assert (await client.post("/tools/write_file", headers=bearer(key))).status_code == 200
    threaded: list[str] = []
    real = access.authenticate

    def counted(token: str | None) -> Principal:
        threaded.append("authenticate")
        return real(token)

    monkeypatch.setattr(access, "authenticate", counted)
    assert (await client.post("/tools/write_file", headers=bearer(key))).status_code == 200
    assert threaded == []  # answered on the event loop from the cache

    other = Database(env.path)  # as `ai-suite keys revoke` in another process
    try:
        with other.transaction() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = '2000-01-01T00:00:00+00:00'"
                " WHERE key_hash = ?",
                (hash_key(key),),
            )
    finally:
        other.close()
    response = await client.post("/tools/write_file", headers=bearer(key))
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    assert threaded == ["authenticate"]  # the moved data_version sent it to a thread


async def test_403_for_viewer_is_audited(env: Env, client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/tools/write_file",
        headers={**bearer(env.keys["viewer"]), REQUEST_ID_HEADER: "req-denied-1"},
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["type"] == "permission_error"
    assert error["code"] == "permission_denied"
    assert "viewer" in error["message"]
    assert PERMISSION in error["message"]

    (row,) = audit_rows(env)
    assert row["outcome"] == "denied"
    assert row["action"] == PERMISSION
    assert row["user_name"] == "viewer-user"
    assert row["status"] == 403
    assert row["request_id"] == "req-denied-1"
    assert '"role": "viewer"' in row["details"]
    assert (
        env.registry.get_sample_value(
            "rbac_permission_checks_total", {"result": "denied", "role": "viewer"}
        )
        == 1.0
    )


async def test_200_for_developer(
    env: Env, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ai_suite.svc.access"):
        response = await client.post(
            "/tools/write_file",
            headers={**bearer(env.keys["developer"]), REQUEST_ID_HEADER: "req-ok-1"},
        )
    assert response.status_code == 200
    assert response.json() == {
        "user": "developer-user",
        "role": "developer",
        "request_id": "req-ok-1",
        "context_user": "developer-user",
    }
    assert audit_rows(env) == []  # allowed checks are not audited by the dependency
    assert (
        env.registry.get_sample_value(
            "rbac_permission_checks_total", {"result": "allowed", "role": "developer"}
        )
        == 1.0
    )
    (record,) = [r for r in caplog.records if r.name == "ai_suite.svc.access"]
    assert record.user == "developer-user"  # the access log knows who called


async def test_admin_is_allowed(env: Env, client: httpx.AsyncClient) -> None:
    response = await client.post("/tools/write_file", headers=bearer(env.keys["admin"]))
    assert response.status_code == 200


async def test_audit_failure_during_denial_is_503(env: Env, client: httpx.AsyncClient) -> None:
    other = sqlite3.connect(env.path)
    try:
        other.execute("DROP TABLE audit_log")
        other.commit()
    finally:
        other.close()
    response = await client.post("/tools/write_file", headers=bearer(env.keys["viewer"]))
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "audit_unavailable"
    assert error["type"] == "server_error"
    assert "data directory" in error["message"]
    assert env.registry.get_sample_value("audit_write_failures_total") == 1.0


async def test_ready_includes_the_database(env: Env, client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"security_database": "ok"}


async def test_failures_are_counted_under_the_route_template(
    env: Env, client: httpx.AsyncClient
) -> None:
    await client.post("/tools/write_file")
    await client.post("/tools/write_file", headers=bearer(env.keys["viewer"]))
    text = (await client.get("/metrics")).text
    assert 'route="/tools/write_file",service="svc",status="401"' in text
    assert 'route="/tools/write_file",service="svc",status="403"' in text
