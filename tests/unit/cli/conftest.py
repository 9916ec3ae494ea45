"""The CLI fixtures (tests/support/cli.py) for the in-process CLI tests."""

from tests.support.cli import data_dir, migrated_data_dir, migrated_security_db, run

__all__ = ["data_dir", "migrated_data_dir", "migrated_security_db", "run"]
