"""A small notes service: an adopter's own code under test (SQLite + Prometheus metrics)."""

from adopter_app.app import SCHEMA, make_server

__all__ = ["SCHEMA", "make_server"]
