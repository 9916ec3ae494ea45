"""pytest adapter for :mod:`ai_suite_pytest.sqlite_reset` (fixtures, markers, ini options).

Loaded in every run once installed, so nothing happens unless a test asks for
one of the fixtures: no autouse fixture, and the core (``sqlite3``, templates,
restores) is imported by the first fixture that needs it, not here.

When what is wrong is found (each a ``pytest.UsageError``, exit code 4, before any test
runs):

- ``pytest_configure``: every ini option's shape (specs, the deadline, the SQL file);
- ``pytest_collection_modifyitems``: marker arguments, and, when a collected test uses
  a fixture, the import of the migrate/open/seed callables. Not earlier: user code is
  often importable only once pytest has set up ``sys.path`` (``pythonpath``, conftests).
  Under xdist the controller imports the ini's callables at ``pytest_sessionstart``
  instead (see there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ai_suite_pytest.sqlite_reset.config import (
    DEADLINE_INI,
    DEFAULT_DEADLINE_S,
    DEFAULT_OPEN,
    MIGRATE_INI,
    OPEN_INI,
    SCHEMA_INI,
    SEED_MARKER,
    SEEDS_INI,
    TEMPLATE_MARKER,
    ConfigError,
    Settings,
    Source,
    load_object,
    parse_seed_marker,
    parse_settings,
    parse_template_marker,
)

if TYPE_CHECKING:
    import sqlite3

    from ai_suite_pytest.sqlite_reset.core import ResetResult, SqliteReset, TemplateSource
    from ai_suite_pytest.sqlite_reset.template import Template

DEFAULT_SEED = "default"  # == core.DEFAULT_SEED, without importing the core
OPT_OUT_MARKER = "no_sqlite_reset"
FIXTURES = frozenset(
    {
        "sqlite_reset",
        "sqlite_seeds",
        "sqlite_db",
        "sqlite_conn",
        "sqlite_db_template",
        "sqlite_db_reset",
        "security_db",
        "security_conn",
        "security_db_template",
        "security_db_reset",
    }
)
_SETTINGS = pytest.StashKey[Settings]()
# Imported callables by spec, filled once collection is done.
_LOADED = pytest.StashKey[dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        MIGRATE_INI,
        "module:callable that migrates the database object opened by sqlite_reset_open"
        f" (or use {SCHEMA_INI})",
        default="",
    )
    parser.addini(
        SCHEMA_INI,
        f"path of a .sql file (relative to the rootdir) that builds the template, instead of"
        f" {MIGRATE_INI}",
        default="",
    )
    parser.addini(
        OPEN_INI,
        "module:callable taking a path and returning the object migrations and seeds receive",
        default=DEFAULT_OPEN,
    )
    parser.addini(
        SEEDS_INI,
        "named seed data, one 'name = module:function' per line (pick one with "
        f"@pytest.mark.{SEED_MARKER}(name))",
        type="linelist",
        default=[],
    )
    parser.addini(
        DEADLINE_INI,
        "seconds a reset waits for another connection's write lock before failing",
        default=str(DEFAULT_DEADLINE_S),
    )


def _usage(error: ConfigError) -> pytest.UsageError:
    return pytest.UsageError(f"sqlite_reset: {error}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{SEED_MARKER}(name): build this test's database from the named seed "
        f"(ini {SEEDS_INI}) on top of the migrations",
    )
    config.addinivalue_line(
        "markers",
        f'{TEMPLATE_MARKER}(migrate="module:function" | schema="path.sql"): build this'
        " test's (or module's) template from another migration or SQL file",
    )
    config.addinivalue_line(
        "markers",
        f"{OPT_OUT_MARKER}: keep the database as the previous test left it "
        "(sqlite_db and sqlite_db_reset do not restore it)",
    )
    try:
        config.stash[_SETTINGS] = parse_settings(config.getini, config.rootpath)
    except ConfigError as exc:
        raise _usage(exc) from None


def _item_source(item: pytest.Item, settings: Settings, rootdir: Path) -> Source | None:
    marker = item.get_closest_marker(TEMPLATE_MARKER)
    if marker is None:
        return settings.source
    return parse_template_marker(marker.args, marker.kwargs, rootdir)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist, import the ini's callables in the controller, before any worker starts.

    The controller collects nothing, and a UsageError raised in a worker's collection
    reaches the user as an INTERNALERROR of xdist; so here the ini's specs are imported
    whether or not a test will use them (a marker's are still checked in the workers).
    """
    config = session.config
    if not config.pluginmanager.has_plugin("dsession"):
        return
    settings = config.stash[_SETTINGS]
    if settings.source is None:
        return
    specs = {settings.open_spec: OPEN_INI}
    if settings.source.kind == "migrate":
        specs[settings.source.value] = MIGRATE_INI
    specs.update({spec: f"{SEEDS_INI} ({name})" for name, spec in settings.seeds.items()})
    try:
        for spec, key in specs.items():
            load_object(spec, key)
    except ConfigError as exc:
        raise _usage(exc) from None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check every marker, then import what the collected tests will need."""
    settings = config.stash[_SETTINGS]
    needed: dict[str, str] = {}  # spec -> the key it came from
    try:
        for item in items:
            seed = item.get_closest_marker(SEED_MARKER)
            if seed is not None:
                parse_seed_marker(seed.args, seed.kwargs)
            source = _item_source(item, settings, config.rootpath)
            if FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
                continue
            if source is None:
                raise ConfigError(
                    f"{MIGRATE_INI} and {SCHEMA_INI} are both unset, and {item.nodeid} uses"
                    " a database fixture: set one in your pytest ini, e.g."
                    f" {MIGRATE_INI} = myapp.db:migrate or {SCHEMA_INI} = schema.sql, or mark"
                    f' the test @pytest.mark.{TEMPLATE_MARKER}(migrate="myapp.db:migrate")'
                )
            if source.kind == "migrate":
                needed.setdefault(source.value, f"{MIGRATE_INI}/{TEMPLATE_MARKER}(migrate=)")
            needed.setdefault(settings.open_spec, OPEN_INI)
            for name, spec in settings.seeds.items():
                needed.setdefault(spec, f"{SEEDS_INI} ({name})")
        config.stash[_LOADED] = {spec: load_object(spec, key) for spec, key in needed.items()}
    except ConfigError as exc:
        raise _usage(exc) from None


def _loaded(config: pytest.Config, spec: str, key: str) -> Any:
    """An imported callable: checked at collection, or now for a fixture asked for
    dynamically (``request.getfixturevalue``), still as a UsageError."""
    loaded = config.stash.setdefault(_LOADED, {})
    if spec not in loaded:
        try:
            loaded[spec] = load_object(spec, key)
        except ConfigError as exc:
            raise _usage(exc) from None
    return loaded[spec]


def _seed_of(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker(SEED_MARKER)
    if marker is None:
        return DEFAULT_SEED
    return parse_seed_marker(marker.args, marker.kwargs)


def _opted_out(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker(OPT_OUT_MARKER) is not None


@pytest.fixture(scope="session")
def sqlite_seeds(pytestconfig: pytest.Config) -> dict[str, Callable[[Any], Any]]:
    """Seed functions by name; override this fixture in a conftest to add seeds in code."""
    settings = pytestconfig.stash[_SETTINGS]
    return {
        name: _loaded(pytestconfig, spec, f"{SEEDS_INI} ({name})")
        for name, spec in settings.seeds.items()
    }


class _Builders:
    """One template builder per source (the ini's, or a marker's), made on first use."""

    def __init__(self, config: pytest.Config, seeds: dict[str, Callable[[Any], Any]]) -> None:
        self._config = config
        self._seeds = seeds
        self._made: dict[str, TemplateSource] = {}

    def __call__(self, source: Source) -> TemplateSource:
        made = self._made.get(source.key)
        if made is None:
            from ai_suite_pytest.sqlite_reset.core import make_builder, make_schema_builder

            settings = self._config.stash[_SETTINGS]
            open_db = _loaded(self._config, settings.open_spec, OPEN_INI)
            if source.kind == "schema":
                build = make_schema_builder(Path(source.value), open_db, self._seeds)
            else:
                migrate = _loaded(self._config, source.value, MIGRATE_INI)
                build = make_builder(migrate, open_db, self._seeds)
            made = self._made[source.key] = (source.key, build)
        return made


_BUILDERS = pytest.StashKey[_Builders]()


@pytest.fixture(scope="session")
def sqlite_reset(
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_seeds: dict[str, Callable[[Any], Any]],
) -> Iterator[SqliteReset]:
    """The worker's reset service: templates built on first use, then reused."""
    from ai_suite_pytest.sqlite_reset.core import SqliteReset

    settings = pytestconfig.stash[_SETTINGS]
    builders = pytestconfig.stash[_BUILDERS] = _Builders(pytestconfig, sqlite_seeds)

    def build_default(path: Path, seed: str) -> None:
        if settings.source is None:
            raise pytest.UsageError(
                f"{MIGRATE_INI} and {SCHEMA_INI} are both unset: set one in your pytest ini,"
                f" e.g. {MIGRATE_INI} = myapp.db:migrate"
            )
        builders(settings.source)[1](path, seed)

    service = SqliteReset(
        build_default, tmp_path_factory.mktemp("sqlite-reset"), deadline_s=settings.deadline_s
    )
    yield service
    service.close()


def _source_of(request: pytest.FixtureRequest) -> TemplateSource | None:
    """The test's ``sqlite_template`` marker as a template source; None: the ini's."""
    marker = request.node.get_closest_marker(TEMPLATE_MARKER)
    if marker is None:
        return None
    config = request.config
    try:
        source = parse_template_marker(marker.args, marker.kwargs, config.rootpath)
    except ConfigError as exc:
        raise _usage(exc) from None
    return config.stash[_BUILDERS](source)


@pytest.fixture
def sqlite_db_template(request: pytest.FixtureRequest, sqlite_reset: SqliteReset) -> Template:
    """The in-memory template for this test's seed (``@pytest.mark.sqlite_seed``)."""
    return sqlite_reset.template(_seed_of(request), source=_source_of(request))


@pytest.fixture
def sqlite_db(request: pytest.FixtureRequest, sqlite_reset: SqliteReset) -> Path:
    """Path of this worker's database file, restored to the template before the test."""
    path = sqlite_reset.worker_db
    if _opted_out(request) and path.exists():
        return path
    return sqlite_reset.fresh_worker_db(_seed_of(request), source=_source_of(request))


@pytest.fixture
def sqlite_conn(
    request: pytest.FixtureRequest, sqlite_reset: SqliteReset
) -> Iterator[sqlite3.Connection]:
    """A private in-memory copy of the template (``deserialize``), for code taking a connection."""
    conn = sqlite_reset.connect(_seed_of(request), source=_source_of(request))
    yield conn
    conn.close()


ResetCallable = Callable[..., "ResetResult"]


@pytest.fixture
def sqlite_db_reset(request: pytest.FixtureRequest, sqlite_reset: SqliteReset) -> ResetCallable:
    """``reset(path, seed=None)``: restore a database that running services hold open."""
    from ai_suite_pytest.sqlite_reset.core import ResetResult

    opted_out = _opted_out(request)
    default_seed = _seed_of(request)
    source = _source_of(request)

    def reset(path: Path | str, seed: str | None = None) -> ResetResult:
        chosen = seed or default_seed
        if opted_out:
            return ResetResult(path=Path(path), seed=chosen, skipped=True)
        return sqlite_reset.reset(path, chosen, source=source)

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
