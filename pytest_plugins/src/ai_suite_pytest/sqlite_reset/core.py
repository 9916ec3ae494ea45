"""The reset service the plugin exposes: templates, the per-worker file, live resets.

Generic: it knows nothing about this repository's schema. ``migrate`` and the
seed functions receive whatever ``open_db(path)`` returns (a ``Database``, a
``sqlite3.Connection``, ...), which is closed afterwards when it has ``close()``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Re-exported: they live in config.py so that loading the plugin imports neither sqlite3
# nor this module.
from ai_suite_pytest.sqlite_reset.config import load_object as load_object
from ai_suite_pytest.sqlite_reset.config import parse_seed_lines as parse_seed_lines
from ai_suite_pytest.sqlite_reset.restore import DEFAULT_DEADLINE_S, LiveTargets
from ai_suite_pytest.sqlite_reset.template import Builder, Template, TemplateCache

DEFAULT_SEED = "default"


def worker_id() -> str:
    """The xdist worker id (``gw0``…), or ``main`` outside xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _check_seed(seed: str, seeds: Mapping[str, Any]) -> None:
    if seed != DEFAULT_SEED and seed not in seeds:
        known = ", ".join(sorted([DEFAULT_SEED, *seeds])) or DEFAULT_SEED
        raise KeyError(f"unknown seed {seed!r}; known seeds: {known}")


def _apply(open_db: Callable[[Path], Any], path: Path, *steps: Callable[[Any], Any]) -> None:
    db = open_db(path)
    try:
        for step in steps:
            step(db)
    finally:
        close = getattr(db, "close", None)
        if callable(close):
            close()


def make_builder(
    migrate: Callable[[Any], Any],
    open_db: Callable[[Path], Any],
    seeds: Mapping[str, Callable[[Any], Any]],
) -> Builder:
    """A template builder: migrations, then the named seed (``default`` adds nothing)."""

    def build(path: Path, seed: str) -> None:
        _check_seed(seed, seeds)
        _apply(open_db, path, migrate, *([seeds[seed]] if seed != DEFAULT_SEED else []))

    return build


def make_schema_builder(
    schema: Path,
    open_db: Callable[[Path], Any],
    seeds: Mapping[str, Callable[[Any], Any]],
) -> Builder:
    """A template builder from a SQL file (``executescript``), then the named seed.

    The script runs on a plain ``sqlite3`` connection whatever ``open_db`` returns:
    a SQL file needs nothing else, and the seeds still get the project's own object.
    """
    script = schema.read_text(encoding="utf-8")

    def build(path: Path, seed: str) -> None:
        _check_seed(seed, seeds)
        conn = sqlite3.connect(str(path))
        try:
            conn.executescript(script)
            conn.commit()
        finally:
            conn.close()
        if seed != DEFAULT_SEED:
            _apply(open_db, path, seeds[seed])

    return build


# (cache key, builder): another template than the default, e.g. from a test's marker.
TemplateSource = tuple[str, Builder]


@dataclass(frozen=True)
class ResetResult:
    path: Path
    seed: str
    skipped: bool = False  # the test opted out (no_sqlite_reset)
    # Nothing had changed the file since its last reset, so no page was copied.
    unchanged: bool = False


class SqliteReset:
    """Templates (built once per worker), the worker's database file, resets of live files."""

    def __init__(
        self,
        build: Builder,
        workdir: Path,
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
        filename: str = "test.db",
        journal_mode: str | None = "wal",
    ) -> None:
        self.templates = TemplateCache(build, workdir / "templates")
        self.deadline_s = deadline_s
        # One file per xdist worker: workers never share (or lock) each other's database.
        self.worker_db = workdir / worker_id() / filename
        self._targets = LiveTargets(journal_mode=journal_mode)

    def template(
        self, seed: str = DEFAULT_SEED, *, source: TemplateSource | None = None
    ) -> Template:
        """The template for ``seed``, built from ``source`` (default: the builder given above)."""
        if source is None:
            return self.templates.get(seed)
        key, build = source
        return self.templates.get(seed, key=key, build=build)

    def reset(
        self, path: Path | str, seed: str = DEFAULT_SEED, *, source: TemplateSource | None = None
    ) -> ResetResult:
        """Restore ``path`` to the template through the online backup API."""
        path = Path(path)
        template = self.template(seed, source=source)
        copied = self._targets.restore(template, path, deadline_s=self.deadline_s)
        return ResetResult(path=path, seed=seed, unchanged=not copied)

    def fresh_worker_db(
        self, seed: str = DEFAULT_SEED, *, source: TemplateSource | None = None
    ) -> Path:
        return self.reset(self.worker_db, seed, source=source).path

    def connect(
        self, seed: str = DEFAULT_SEED, *, source: TemplateSource | None = None
    ) -> sqlite3.Connection:
        """A private in-memory copy of the template (``deserialize``)."""
        return self.template(seed, source=source).connect()

    def close(self) -> None:
        self._targets.close()
        self.templates.close()
