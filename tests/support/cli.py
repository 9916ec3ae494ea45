"""Fixtures for the ``ai-suite`` CLI tests (unit, integration and core conftests import them):
a private data directory, a migrated database, and an in-process runner."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from services.cli.main import cli
from tests.support.keys import migrated_database
from tests.support.live import free_port


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``AI_SUITE_DATA_DIR`` (not created yet: the CLI must create it). The caller's
    other settings never reach a test: the root conftest.py removes them."""
    path = tmp_path / "data"
    monkeypatch.setenv("AI_SUITE_DATA_DIR", str(path))
    return path


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy variables pointing at nothing: probes of loopback services must ignore them."""
    proxy = f"http://127.0.0.1:{free_port()}"
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def migrated_security_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated security database, built once; a new WAL database costs fsyncs."""
    return migrated_database(tmp_path_factory.mktemp("cli-template") / "security.db")


@pytest.fixture
def migrated_data_dir(data_dir: Path, migrated_security_db: Path) -> Path:
    """``data_dir`` holding a copy of the migrated database."""
    data_dir.mkdir(parents=True)
    shutil.copyfile(migrated_security_db, data_dir / "security.db")
    return data_dir


@pytest.fixture
def run() -> Callable[..., Result]:
    """``run("keys", "list")``: invoke ``ai-suite`` in-process; stdout and stderr kept apart.

    Unexpected exceptions propagate (``catch_exceptions=False``); click still turns
    usage errors and ``ClickException`` into exit codes 2 and 1.
    """
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False, prog_name="ai-suite")

    return invoke
