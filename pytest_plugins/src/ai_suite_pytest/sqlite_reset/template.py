"""A database template: built once from migrations and seed data, then kept in memory.

The build runs against a real file (migration code usually opens its own
connections by path) and the result is copied into an in-memory database, from
which every reset is served: by ``backup`` into a live file or by
``deserialize`` into a fresh connection.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# build(path, seed_name): create the schema and data of one template in the file at ``path``.
Builder = Callable[[Path, str], None]


class TemplateBuildError(RuntimeError):
    """The migration or seed code did not leave a usable database behind."""


@dataclass
class Template:
    """An in-memory copy of a migrated, seeded database."""

    name: str
    connection: sqlite3.Connection
    image: bytes
    page_size: int

    def connect(self) -> sqlite3.Connection:
        """A new in-memory connection holding a private copy of the template (``deserialize``)."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.deserialize(self.image)
        return conn

    def close(self) -> None:
        self.connection.close()


def build_template(build: Builder, workdir: Path, name: str = "default") -> Template:
    """Run ``build`` on a scratch file under ``workdir`` and load the result into memory."""
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"template-{name}-", dir=workdir))
    path = scratch / "template.db"
    try:
        build(path, name)
        if not path.exists():
            raise TemplateBuildError(f"building template {name!r} created no database at {path}")
        return _load_into_memory(path, name)
    finally:
        # Safe to delete: the build has returned and _load_into_memory closed its connection;
        # if the build leaked a connection, _load_into_memory has already raised.
        shutil.rmtree(scratch, ignore_errors=True)


def _load_into_memory(path: Path, name: str) -> Template:
    disk = sqlite3.connect(str(path), isolation_level=None, timeout=0)
    try:
        try:
            # An image that says "WAL" cannot be deserialized, and a WAL file that another
            # connection still holds open cannot leave WAL mode: both are caught here.
            disk.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.OperationalError as exc:
            raise TemplateBuildError(
                f"building template {name!r}: the migration or seed code left a connection "
                f"open on {path} ({exc}); close every connection it opens"
            ) from exc
        page_size = int(disk.execute("PRAGMA page_size").fetchone()[0])
        memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        memory.execute(f"PRAGMA page_size = {page_size}")
        disk.backup(memory)
    finally:
        disk.close()
    return Template(name=name, connection=memory, image=memory.serialize(), page_size=page_size)


class TemplateCache:
    """Templates by source and seed, each built at most once per process (xdist worker)."""

    def __init__(self, build: Builder, workdir: Path) -> None:
        self._build = build
        self._workdir = workdir
        self._templates: dict[tuple[str, str], Template] = {}
        self._lock = threading.Lock()

    def get(
        self, name: str = "default", *, key: str = "", build: Builder | None = None
    ) -> Template:
        """The template for seed ``name``; ``key`` names another source built by ``build``."""
        with self._lock:
            template = self._templates.get((key, name))
            if template is None:
                template = build_template(build or self._build, self._workdir, name)
                self._templates[(key, name)] = template
            return template

    def close(self) -> None:
        with self._lock:
            for template in self._templates.values():
                template.close()
            self._templates.clear()
