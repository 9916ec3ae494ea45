"""The plugin's settings and marker arguments, checked before any test runs.

Loaded at every pytest start (the plugin imports it), so it uses nothing but the
standard library's lightest modules: no ``sqlite3``, no user code. Every error is
a :class:`ConfigError` whose message names the key, the value and the fix; the
plugin turns it into ``pytest.UsageError``.

Two stages, because user code may only be importable once pytest has set up
``sys.path`` (``pythonpath``, rootdir conftests):

- :func:`parse_settings` / :func:`parse_template_marker` check the *shape* of every
  value (``module:attribute``, a positive number, an existing file) at configure
  time and at collection;
- :func:`load_object` imports a spec; the plugin calls it once collection is done,
  and only when a collected test uses one of the fixtures.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIGRATE_INI = "sqlite_reset_migrate"
SCHEMA_INI = "sqlite_reset_schema"
OPEN_INI = "sqlite_reset_open"
SEEDS_INI = "sqlite_reset_seeds"
DEADLINE_INI = "sqlite_reset_deadline"
TEMPLATE_MARKER = "sqlite_template"
SEED_MARKER = "sqlite_seed"

DEFAULT_OPEN = "sqlite3:connect"
# Kept here rather than imported from restore.py: that module imports sqlite3.
DEFAULT_DEADLINE_S = 5.0

_IDENTIFIER = r"[A-Za-z_]\w*"
_SPEC = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*:{_IDENTIFIER}")


class ConfigError(ValueError):
    """A setting or marker argument is wrong; the message is meant for the user as is."""


@dataclass(frozen=True)
class Source:
    """Where a template's schema comes from: a migrate callable or a SQL file."""

    kind: str  # "migrate" | "schema"
    value: str  # the ``module:attribute`` spec, or the SQL file's absolute path

    @property
    def key(self) -> str:
        """Templates are cached per source and seed: two tests naming the same source share."""
        return f"{self.kind}={self.value}"


@dataclass(frozen=True)
class Settings:
    source: Source | None  # None: only tests with @pytest.mark.sqlite_template can use it
    open_spec: str = DEFAULT_OPEN
    seeds: Mapping[str, str] = field(default_factory=dict)
    deadline_s: float = DEFAULT_DEADLINE_S


def check_spec(key: str, value: str) -> str:
    """``value`` if shaped ``package.module:attribute``; else a ConfigError naming ``key``."""
    spec = value.strip()
    if not _SPEC.fullmatch(spec):
        raise ConfigError(
            f"{key} = {value!r} is not a 'package.module:attribute' spec: name the module and "
            f"the callable with a colon, e.g. {key} = myapp.db:migrate"
        )
    return spec


def parse_seed_lines(lines: list[str]) -> dict[str, str]:
    """``name = module:function`` lines (ini ``sqlite_reset_seeds``) → {name: spec}."""
    seeds: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        name, sep, spec = line.partition("=")
        if not sep or not re.fullmatch(r"[\w.-]+", name.strip()):
            raise ConfigError(
                f"{SEEDS_INI}: line {line.strip()!r} is not 'name = module:function'; write one"
                " seed per line, e.g. 'admin = tests.seeds:admin'"
            )
        seeds[name.strip()] = check_spec(f"{SEEDS_INI} ({name.strip()})", spec)
    return seeds


def parse_deadline(value: str) -> float:
    try:
        deadline = float(value)
    except ValueError:
        deadline = math.nan
    if not math.isfinite(deadline) or deadline <= 0:
        raise ConfigError(
            f"{DEADLINE_INI} = {value!r} is not a positive number of seconds: set it to how"
            f" long a reset may wait for another connection's write lock, e.g."
            f" {DEADLINE_INI} = {DEFAULT_DEADLINE_S:g}"
        )
    return deadline


def schema_path(key: str, value: str, rootdir: Path) -> Path:
    """The SQL file ``value`` (relative to the rootdir), which must exist."""
    path = (rootdir / value.strip()).resolve()
    if not path.is_file():
        raise ConfigError(
            f"{key} = {value!r}: no such file {path}; give the path of a .sql file relative to"
            f" the rootdir ({rootdir}), e.g. {key} = schema.sql"
        )
    return path


def parse_settings(ini: Callable[[str], Any], rootdir: Path) -> Settings:
    """All ini options, checked for shape (nothing is imported): raises ConfigError."""
    migrate = str(ini(MIGRATE_INI)).strip()
    schema = str(ini(SCHEMA_INI)).strip()
    if migrate and schema:
        raise ConfigError(
            f"{MIGRATE_INI} = {migrate!r} and {SCHEMA_INI} = {schema!r} are both set: a"
            " template comes from one of them, so remove the other (a test or module can pick"
            f" another with @pytest.mark.{TEMPLATE_MARKER}(...))"
        )
    source = None
    if migrate:
        source = Source("migrate", check_spec(MIGRATE_INI, migrate))
    elif schema:
        source = Source("schema", str(schema_path(SCHEMA_INI, schema, rootdir)))
    return Settings(
        source=source,
        open_spec=check_spec(OPEN_INI, str(ini(OPEN_INI)) or DEFAULT_OPEN),
        seeds=parse_seed_lines(list(ini(SEEDS_INI))),
        deadline_s=parse_deadline(str(ini(DEADLINE_INI))),
    )


def parse_template_marker(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], rootdir: Path
) -> Source:
    """``@pytest.mark.sqlite_template(migrate="m:f")`` or ``(schema="x.sql")`` → its Source."""
    usage = (
        f"@pytest.mark.{TEMPLATE_MARKER} takes exactly one keyword argument:"
        f' migrate="package.module:function" or schema="path/to/schema.sql" (relative to the'
        " rootdir)"
    )
    if args or len(kwargs) != 1 or not set(kwargs) <= {"migrate", "schema"}:
        shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        raise ConfigError(f"{TEMPLATE_MARKER}({shown}): {usage}")
    ((kind, value),) = kwargs.items()
    key = f"@pytest.mark.{TEMPLATE_MARKER}({kind}=...)"
    if not isinstance(value, str):
        raise ConfigError(f"{key}: {value!r} is not a string; {usage}")
    if kind == "migrate":
        return Source("migrate", check_spec(key, value))
    return Source("schema", str(schema_path(key, value, rootdir)))


def parse_seed_marker(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    if kwargs or len(args) != 1 or not isinstance(args[0], str) or not args[0]:
        shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        raise ConfigError(
            f"@pytest.mark.{SEED_MARKER}({shown}): takes one seed name, e.g."
            f' @pytest.mark.{SEED_MARKER}("admin") with admin defined in {SEEDS_INI}'
        )
    return str(args[0])


def load_object(spec: str, key: str = "spec") -> Any:
    """``"package.module:attribute"`` → the attribute; ConfigError naming ``key`` otherwise."""
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{key} = {spec!r}: expected 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{key} = {spec!r}: cannot import {module_name!r} ({exc}); make it importable"
            " (install it, or add its folder to the ini option pythonpath)"
        ) from exc
    try:
        found = getattr(module, attr)
    except AttributeError:
        raise ConfigError(
            f"{key} = {spec!r}: module {module_name!r} has no attribute {attr!r}; name a"
            " callable it defines"
        ) from None
    if not callable(found):
        raise ConfigError(f"{key} = {spec!r}: {found!r} is not callable; name a function")
    return found
