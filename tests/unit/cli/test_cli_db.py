"""``ai-suite db migrate`` and the parts of ``up`` safe to run in-process.

``ai-suite status`` against live servers: tests/integration/cli/test_cli_status.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from filelock import FileLock

from services.cli.main import _bootstrap_admin
from services.core.settings import CoreSettings
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import LATEST_VERSION, MIGRATIONS

Run = Callable[..., Result]


# --- db migrate ---------------------------------------------------------------


def test_migrate_applies_every_migration_then_is_up_to_date(run: Run, data_dir: Path) -> None:
    first = run("db", "migrate")

    assert first.exit_code == 0
    assert first.stdout == ""
    for migration in MIGRATIONS:
        assert f"applied migration {migration.version}: {migration.name}" in first.stderr
    db_path = data_dir / "security.db"
    assert db_path.is_file()
    assert f"{db_path}: schema version {LATEST_VERSION}" in first.stderr
    assert "already up to date" not in first.stderr

    second = run("db", "migrate")

    assert second.exit_code == 0
    assert "applied migration" not in second.stderr
    assert f"{db_path}: schema version {LATEST_VERSION} (already up to date)" in second.stderr


def test_migrate_creates_a_nested_data_dir(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = tmp_path / "a" / "b"
    monkeypatch.setenv("AI_SUITE_DATA_DIR", str(nested))

    assert run("db", "migrate").exit_code == 0
    assert (nested / "security.db").is_file()


# --- up (only what runs without starting services or installing signal handlers) -----


def test_up_refuses_to_run_twice_for_one_data_dir(run: Run, data_dir: Path) -> None:
    (data_dir / "run").mkdir(parents=True)
    lock = FileLock(str(data_dir / "run" / "up.lock"))
    with lock.acquire(timeout=0):
        result = run("up")

    assert result.exit_code == 1
    assert "another `ai-suite up` is already running" in result.stderr
    assert str(data_dir) in result.stderr


def test_bootstrap_admin_creates_admin_once(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = CoreSettings()

    _bootstrap_admin(settings)

    first = capsys.readouterr()
    key = first.out.strip()
    assert re.fullmatch(r"ais_[A-Za-z0-9_-]{43}", key)
    assert "created user 'admin' (role admin)" in first.err
    assert key not in first.err
    database = Database(settings.security_db_path)
    try:
        (info,) = KeyStore(database).list_keys()
    finally:
        database.close()
    assert (info.user, info.role, info.state, info.prefix) == ("admin", "admin", "active", key[:12])

    _bootstrap_admin(settings)

    assert capsys.readouterr() == ("", "")


def test_bootstrap_admin_does_nothing_when_users_exist(
    run: Run, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("keys", "create", "--user", "alice", "--role", "viewer").exit_code == 0

    _bootstrap_admin(CoreSettings())

    assert capsys.readouterr() == ("", "")
