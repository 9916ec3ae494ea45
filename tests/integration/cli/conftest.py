"""The CLI fixtures (tests/support/cli.py) for CLI tests against live servers."""

from tests.support.cli import data_dir, dead_proxy, run

__all__ = ["data_dir", "dead_proxy", "run"]
