"""The reset service the plugin exposes: templates, the per-worker file, live resets.

Generic: it knows nothing about this repository's schema. ``migrate`` and the
seed functions receive whatever ``open_db(path)`` returns (a ``Database``, a
``sqlite3.Connection``, ...), which is closed afterwards when it has ``close()``.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_suite_pytest.sqlite_reset.restore import DEFAULT_DEADLINE_S, LiveTargets
from ai_suite_pytest.sqlite_reset.template import Builder, Template, TemplateCache

DEFAULT_SEED = "default"


def load_object(spec: str) -> Any:
    """``"package.module:attribute"`` → the attribute, with an error that says what is wrong."""
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'package.module:attribute', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} (from {spec!r}): {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None


def parse_seed_lines(lines: list[str]) -> dict[str, str]:
    """``name = module:function`` lines (ini ``sqlite_reset_seeds``) → {name: spec}."""
    seeds: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        name, sep, spec = line.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ValueError(f"sqlite_reset_seeds: expected 'name = module:function', got {line!r}")
        seeds[name.strip()] = spec.strip()
    return seeds


def worker_id() -> str:
    """The xdist worker id (``gw0``…), or ``main`` outside xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def make_builder(
    migrate: Callable[[Any], Any],
    open_db: Callable[[Path], Any],
    seeds: Mapping[str, Callable[[Any], Any]],
) -> Builder:
    """A template builder: migrations, then the named seed (``default`` adds nothing)."""

    def build(path: Path, seed: str) -> None:
        if seed != DEFAULT_SEED and seed not in seeds:
            known = ", ".join(sorted([DEFAULT_SEED, *seeds])) or DEFAULT_SEED
            raise KeyError(f"unknown seed {seed!r}; known seeds: {known}")
        db = open_db(path)
        try:
            migrate(db)
            if seed != DEFAULT_SEED:
                seeds[seed](db)
        finally:
            close = getattr(db, "close", None)
            if callable(close):
                close()

    return build


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

    def template(self, seed: str = DEFAULT_SEED) -> Template:
        return self.templates.get(seed)

    def reset(self, path: Path | str, seed: str = DEFAULT_SEED) -> ResetResult:
        """Restore ``path`` to the template through the online backup API."""
        path = Path(path)
        copied = self._targets.restore(self.template(seed), path, deadline_s=self.deadline_s)
        return ResetResult(path=path, seed=seed, unchanged=not copied)

    def fresh_worker_db(self, seed: str = DEFAULT_SEED) -> Path:
        return self.reset(self.worker_db, seed).path

    def connect(self, seed: str = DEFAULT_SEED) -> sqlite3.Connection:
        """A private in-memory copy of the template (``deserialize``)."""
        return self.template(seed).connect()

    def close(self) -> None:
        self._targets.close()
        self.templates.close()
