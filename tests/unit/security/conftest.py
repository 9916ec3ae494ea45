"""Fixtures for the security unit tests: a migrated database per test, in tmp_path."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import migrate
from services.security.rbac import AccessControl
from tests.support.keys import migrated_database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "security.db"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_database(tmp_path_factory.mktemp("template") / "security.db")


@pytest.fixture
def security_db_path(tmp_path: Path, migrated_template: Path) -> Path:
    """A copy of the migrated template in this test's tmp_path."""
    path = tmp_path / "security.db"
    shutil.copyfile(migrated_template, path)
    return path


@pytest.fixture
def db(db_path: Path, migrated_template: Path) -> Iterator[Database]:
    shutil.copyfile(migrated_template, db_path)
    database = Database(db_path)
    assert migrate(database) == []  # the copy is current
    yield database
    database.close()


@pytest.fixture
def other_db(db: Database, db_path: Path) -> Iterator[Database]:
    """A second Database on the same file, as another process would have."""
    database = Database(db_path)
    yield database
    database.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def store(db: Database) -> KeyStore:
    return KeyStore(db)


@pytest.fixture
def access(db: Database, registry: CollectorRegistry) -> AccessControl:
    return AccessControl(db, registry)
