"""Security database files for tests: a migrated template, and API keys made as
``ai-suite keys create`` would."""

from __future__ import annotations

from pathlib import Path

from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import migrate


def make_key(db_path: Path, user: str, role: str) -> str:
    """A new key for ``user`` with ``role``; migrates ``db_path`` first (creating it if absent).

    The connection is closed before returning, so a service started later on the same file
    sees the key the way it would see one made by another process.
    """
    db = Database(db_path)
    try:
        migrate(db)
        return KeyStore(db).create_key(user, role).key
    finally:
        db.close()


def migrated_database(path: Path) -> Path:
    """Create ``path`` as a migrated security database and close it (the WAL is checkpointed
    into the file, so copies of it are complete). Build it once per session: a new WAL
    database costs several fsyncs."""
    db = Database(path)
    try:
        migrate(db)
    finally:
        db.close()
    return path
