"""Resetting the security database under running services: another process and a live gateway.

Both keep their own WAL connections open across the reset; both must see the
template's data at once, and the gateway's RBAC caches must drop the old keys.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ai_suite_pytest.sqlite_reset import SqliteReset, make_builder

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import migrate
from tests.support.live import serve_in_thread

# A "service" in another process: one long-lived connection and an AccessControl cache.
READER = textwrap.dedent("""
    import sys
    from prometheus_client import CollectorRegistry
    from services.security.db import Database
    from services.security.rbac import AccessControl, AuthError

    db = Database(sys.argv[1])
    access = AccessControl(db, CollectorRegistry())
    for line in sys.stdin:
        key = line.strip()
        users = db.query_one("SELECT COUNT(*) FROM users")[0]
        try:
            who = access.authenticate(key).user
        except AuthError as exc:
            who = "refused: " + exc.reason
        print(f"{users}|{who}", flush=True)
    db.close()
    """)


@pytest.fixture
def reset(tmp_path: Path) -> Iterator[SqliteReset]:
    service = SqliteReset(make_builder(migrate, Database, {}), tmp_path / "reset", deadline_s=2)
    yield service
    service.close()


def test_another_process_sees_the_reset_at_once(reset: SqliteReset) -> None:
    path = reset.fresh_worker_db()
    writer = Database(path)
    key = KeyStore(writer).create_key("alice", "developer").key
    writer.close()
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert reader.stdin is not None
        assert reader.stdout is not None

        def ask() -> str:
            reader.stdin.write(key + "\n")
            reader.stdin.flush()
            return reader.stdout.readline().strip()

        assert ask() == "1|alice"  # connection open, key cached
        reset.reset(path)  # the reader's connection and cache stay alive throughout
        assert ask() == "0|refused: invalid API key"
    finally:
        reader.stdin.close()
        assert reader.wait(timeout=30) == 0
        reader.stdout.close()


def test_a_live_gateway_sees_the_reset_at_once(reset: SqliteReset, tmp_path: Path) -> None:
    settings = GatewaySettings(data_dir=tmp_path / "data", inference_url="http://127.0.0.1:9/v1")
    path = settings.security_db_path
    reset.reset(path)
    writer = Database(path)
    key = KeyStore(writer).create_key("alice", "developer").key
    writer.close()
    with serve_in_thread(create_app(settings)) as base, httpx.Client(base_url=base) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/models", headers=headers).status_code == 200
        reset.reset(path)
        refused = client.get("/v1/models", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == "invalid API key"
        assert client.get("/ready").status_code == 200  # the schema is intact
