"""Fixtures for the shared core's integration tests (tests/support/cli.py has dead_proxy)."""

from tests.support.cli import dead_proxy

__all__ = ["dead_proxy"]
