"""Backups under load, and restores against processes that hold the database.

Issue 15's done-when: a backup taken while threads insert audit rows and create keys
restores to a database that passes integrity_check and authenticates the same keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.security.audit import AuditEntry, AuditLog
from services.security.backup import verify
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.rbac import AccessControl, AuthError
from tests.support.keys import make_key

AI_SUITE = str(Path(sys.executable).parent / "ai-suite")


def ai_suite(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AI_SUITE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [AI_SUITE, "db", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def authenticates(db_path: Path, key: str) -> bool:
    database = Database(db_path)
    try:
        AccessControl(database, CollectorRegistry()).authenticate(key)
        return True
    except AuthError:
        return False
    finally:
        database.close()


class Load:
    """Threads that write audit rows and create keys until stopped (each its own
    connection, as the services' threads have)."""

    def __init__(self, db_path: Path) -> None:
        self.db = Database(db_path)
        self.stop = threading.Event()
        self.keys: list[str] = []
        self.audit_rows = 0
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._guard, args=(self._audit,)),
            threading.Thread(target=self._guard, args=(self._audit,)),
            threading.Thread(target=self._guard, args=(self._keys,)),
        ]

    def _guard(self, work) -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def _audit(self) -> None:
        audit = AuditLog(self.db, CollectorRegistry())
        while not self.stop.is_set():
            audit.write(AuditEntry(action="load:test", outcome="ok", details={"pad": "x" * 200}))
            with self.lock:
                self.audit_rows += 1

    def _keys(self) -> None:
        store = KeyStore(self.db)
        number = 0
        while not self.stop.is_set():
            created = store.create_key(f"user{number % 50}", "developer")
            number += 1
            with self.lock:
                self.keys.append(created.key)

    def committed_keys(self) -> list[str]:
        with self.lock:
            return list(self.keys)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        self.db.close()


def test_a_backup_under_load_restores_and_authenticates_the_same_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    db_path = data_dir / "security.db"
    admin = make_key(db_path, "admin", "admin")

    with Load(db_path) as load:
        while len(load.committed_keys()) < 20 or load.audit_rows < 200:
            assert not load.errors, load.errors
            load.stop.wait(0.05)
        before = load.committed_keys()
        made = ai_suite(data_dir, "backup")
        assert made.returncode == 0, made.stderr
        # Keys created once the backup is done cannot be in it.
        seen = len(load.committed_keys())
        while len(load.committed_keys()) < seen + 5:
            assert not load.errors, load.errors
            load.stop.wait(0.05)
        after = load.committed_keys()[-1]
    assert not load.errors, load.errors
    backup_path = Path(made.stdout.strip())
    assert "integrity_check ok" in made.stderr
    in_backup = verify(backup_path)

    restored = ai_suite(data_dir, "restore", str(backup_path))

    assert restored.returncode == 0, restored.stderr
    assert verify(db_path).integrity == "ok"
    assert all(authenticates(db_path, key) for key in [admin, *before])
    assert not authenticates(db_path, after)
    database = Database(db_path)
    try:
        keys_now = int(database.query_one("SELECT COUNT(*) FROM api_keys")[0])
        rows_now = int(database.query_one("SELECT COUNT(*) FROM audit_log")[0])
    finally:
        database.close()
    assert keys_now == in_backup.keys >= len(before) + 1
    assert rows_now == in_backup.audit_rows >= 200


HOLDER = textwrap.dedent("""
    import sqlite3, sys, time
    from filelock import FileLock
    data_dir = sys.argv[1]
    if sys.argv[2] == "up":
        lock = FileLock(data_dir + "/run/up.lock")
        lock.acquire(timeout=0)
    conn = sqlite3.connect(data_dir + "/security.db")
    conn.execute("SELECT COUNT(*) FROM users").fetchone()
    print("holding", flush=True)
    time.sleep(600)
    """)


@pytest.fixture
def holder(tmp_path: Path):
    """Start a process that holds the database (``up``: and the up lock, as `ai-suite up`)."""
    started: list[subprocess.Popen[str]] = []

    def start(data_dir: Path, kind: str) -> subprocess.Popen[str]:
        (data_dir / "run").mkdir(mode=0o700, exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(data_dir), kind],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == "holding\n"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()


def _saved(data_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    key = make_key(data_dir / "security.db", "alice", "developer")
    made = ai_suite(data_dir, "backup", str(tmp_path / "saved.db"))
    assert made.returncode == 0, made.stderr
    return Path(made.stdout.strip()), key


def test_restore_refuses_while_up_runs_and_names_its_pid(tmp_path: Path, holder) -> None:
    data_dir = tmp_path / "data"
    saved, _ = _saved(data_dir, tmp_path)
    up = holder(data_dir, "up")

    refused = ai_suite(data_dir, "restore", str(saved))

    assert refused.returncode == 1
    assert f"ai-suite up, pid {up.pid}" in refused.stderr
    assert "--stop-services" in refused.stderr
    assert up.poll() is None
    assert not list(data_dir.glob("security.db.replaced-*"))


def test_restore_with_stop_services_stops_up_then_restores(tmp_path: Path, holder) -> None:
    data_dir = tmp_path / "data"
    saved, key = _saved(data_dir, tmp_path)
    later = make_key(data_dir / "security.db", "bob", "developer")
    up = holder(data_dir, "up")

    restored = ai_suite(data_dir, "restore", "--stop-services", str(saved))

    assert restored.returncode == 0, restored.stderr
    assert f"stopping pid {up.pid}" in restored.stderr
    assert up.wait(timeout=30) != 0  # ended by our SIGTERM
    assert authenticates(data_dir / "security.db", key)
    assert not authenticates(data_dir / "security.db", later)


def test_restore_does_not_stop_a_process_that_is_not_a_service(tmp_path: Path, holder) -> None:
    data_dir = tmp_path / "data"
    saved, _ = _saved(data_dir, tmp_path)
    other = holder(data_dir, "reader")

    refused = ai_suite(data_dir, "restore", "--stop-services", str(saved))

    assert refused.returncode == 1
    assert f"pid {other.pid}" in refused.stderr
    assert "stop them yourself" in refused.stderr
    assert other.poll() is None
