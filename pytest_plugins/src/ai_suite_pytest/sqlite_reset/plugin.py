"""pytest adapter for :mod:`ai_suite_pytest.sqlite_reset` (fixtures, markers, ini options).

Loaded in every run once installed, so nothing happens unless a test asks for
one of the fixtures: no autouse fixture, no import of the migration code.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_suite_pytest.sqlite_reset.core import (
    DEFAULT_SEED,
    ResetResult,
    SqliteReset,
    load_object,
    make_builder,
    parse_seed_lines,
)
from ai_suite_pytest.sqlite_reset.restore import DEFAULT_DEADLINE_S
from ai_suite_pytest.sqlite_reset.template import Template

SEED_MARKER = "sqlite_seed"
OPT_OUT_MARKER = "no_sqlite_reset"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "sqlite_reset_migrate",
        "module:callable that migrates the database object opened by sqlite_reset_open",
        default="",
    )
    parser.addini(
        "sqlite_reset_open",
        "module:callable taking a path and returning the object migrations and seeds receive",
        default="sqlite3:connect",
    )
    parser.addini(
        "sqlite_reset_seeds",
        "named seed data, one 'name = module:function' per line (pick one with "
        "@pytest.mark.sqlite_seed(name))",
        type="linelist",
        default=[],
    )
    parser.addini(
        "sqlite_reset_deadline",
        "seconds a reset waits for another connection's write lock before failing",
        default=str(DEFAULT_DEADLINE_S),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{SEED_MARKER}(name): build this test's database from the named seed "
        "(ini sqlite_reset_seeds) on top of the migrations",
    )
    config.addinivalue_line(
        "markers",
        f"{OPT_OUT_MARKER}: keep the database as the previous test left it "
        "(sqlite_db and sqlite_db_reset do not restore it)",
    )


def _seed_of(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker(SEED_MARKER)
    if marker is None:
        return DEFAULT_SEED
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        raise pytest.UsageError(f"@pytest.mark.{SEED_MARKER} takes one seed name, e.g. ('admin')")
    return str(marker.args[0])


def _opted_out(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker(OPT_OUT_MARKER) is not None


@pytest.fixture(scope="session")
def sqlite_seeds(pytestconfig: pytest.Config) -> dict[str, Callable[[Any], Any]]:
    """Seed functions by name; override this fixture in a conftest to add seeds in code."""
    specs = parse_seed_lines(pytestconfig.getini("sqlite_reset_seeds"))
    return {name: load_object(spec) for name, spec in specs.items()}


@pytest.fixture(scope="session")
def sqlite_reset(
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_seeds: dict[str, Callable[[Any], Any]],
) -> Iterator[SqliteReset]:
    """The worker's reset service: templates built on first use, then reused."""
    migrate = pytestconfig.getini("sqlite_reset_migrate")
    if not migrate:
        raise pytest.UsageError(
            "sqlite_reset_migrate is not set: set it in your pytest ini to the function that"
            " builds your schema, e.g. sqlite_reset_migrate = myapp.db:migrate"
        )
    build = make_builder(
        load_object(migrate),
        load_object(pytestconfig.getini("sqlite_reset_open")),
        sqlite_seeds,
    )
    deadline = float(pytestconfig.getini("sqlite_reset_deadline"))
    service = SqliteReset(build, tmp_path_factory.mktemp("sqlite-reset"), deadline_s=deadline)
    yield service
    service.close()


@pytest.fixture
def sqlite_db_template(request: pytest.FixtureRequest, sqlite_reset: SqliteReset) -> Template:
    """The in-memory template for this test's seed (``@pytest.mark.sqlite_seed``)."""
    return sqlite_reset.template(_seed_of(request))


@pytest.fixture
def sqlite_db(request: pytest.FixtureRequest, sqlite_reset: SqliteReset) -> Path:
    """Path of this worker's database file, restored to the template before the test."""
    path = sqlite_reset.worker_db
    if _opted_out(request) and path.exists():
        return path
    return sqlite_reset.fresh_worker_db(_seed_of(request))


@pytest.fixture
def sqlite_conn(
    request: pytest.FixtureRequest, sqlite_reset: SqliteReset
) -> Iterator[sqlite3.Connection]:
    """A private in-memory copy of the template (``deserialize``), for code taking a connection."""
    conn = sqlite_reset.connect(_seed_of(request))
    yield conn
    conn.close()


ResetCallable = Callable[..., ResetResult]


@pytest.fixture
def sqlite_db_reset(request: pytest.FixtureRequest, sqlite_reset: SqliteReset) -> ResetCallable:
    """``reset(path, seed=None)``: restore a database that running services hold open."""
    opted_out = _opted_out(request)
    default_seed = _seed_of(request)

    def reset(path: Path | str, seed: str | None = None) -> ResetResult:
        chosen = seed or default_seed
        if opted_out:
            return ResetResult(path=Path(path), seed=chosen, skipped=True)
        return sqlite_reset.reset(path, chosen)

    return reset


# The names the platform's own tests grew up with (its database is the security database).
@pytest.fixture
def security_db_template(sqlite_db_template: Template) -> Template:
    """Alias of ``sqlite_db_template``."""
    return sqlite_db_template


@pytest.fixture
def security_db(sqlite_db: Path) -> Path:
    """Alias of ``sqlite_db``."""
    return sqlite_db


@pytest.fixture
def security_conn(sqlite_conn: sqlite3.Connection) -> sqlite3.Connection:
    """Alias of ``sqlite_conn``."""
    return sqlite_conn


@pytest.fixture
def security_db_reset(sqlite_db_reset: ResetCallable) -> ResetCallable:
    """Alias of ``sqlite_db_reset``."""
    return sqlite_db_reset
