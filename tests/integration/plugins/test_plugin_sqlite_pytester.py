"""The SQLite reset plugin as a user meets it: fixtures, markers and ini options (pytester)."""

from __future__ import annotations

import pytest

SEEDS = """
from services.security.keys import KeyStore

def admin(db):
    KeyStore(db).create_key("root", "admin")
"""


def test_fixtures_markers_and_seeds(lone_pytester: pytest.Pytester, sqlite_args: list[str]) -> None:
    lone_pytester.makepyfile(seeds_inner=SEEDS)
    lone_pytester.makeini("""
        [pytest]
        addopts = --strict-markers
        sqlite_reset_migrate = services.security.migrations:migrate
        sqlite_reset_open = services.security.db:Database
        sqlite_reset_seeds =
            admin = seeds_inner:admin
        """)
    lone_pytester.makepyfile(test_inner="""
        import pytest
        from prometheus_client import CollectorRegistry
        from services.security.db import Database
        from services.security.keys import KeyStore

        def users(path):
            db = Database(path)
            try:
                return [r["name"] for r in db.query("SELECT name FROM users")]
            finally:
                db.close()

        def test_a_writes(security_db):
            db = Database(security_db)
            KeyStore(db).create_key("alice", "developer")
            db.close()
            assert users(security_db) == ["alice"]

        def test_b_sees_a_fresh_database(security_db):
            assert users(security_db) == []

        @pytest.mark.no_sqlite_reset
        def test_c_opted_out_sees_what_b_left(security_db):
            assert users(security_db) == []

        @pytest.mark.sqlite_seed("admin")
        def test_d_seeded(security_db, security_conn, security_db_template):
            assert users(security_db) == ["root"]
            assert security_conn.execute("SELECT name FROM users").fetchall() == [("root",)]
            assert security_db_template.name == "admin"

        def test_e_live_reset(security_db, security_db_reset):
            db = Database(security_db)  # stands for a running service's connection
            KeyStore(db).create_key("bob", "viewer")
            result = security_db_reset(security_db)
            assert not result.skipped
            assert [r[0] for r in db.query("SELECT name FROM users")] == []
            security_db_reset(security_db, seed="admin")
            assert [r[0] for r in db.query("SELECT name FROM users")] == ["root"]
            db.close()

        @pytest.mark.no_sqlite_reset
        def test_f_live_reset_opted_out(security_db, security_db_reset):
            assert security_db_reset(security_db).skipped
            assert users(security_db) == ["root"]
        """)
    result = lone_pytester.runpytest(*sqlite_args)
    result.assert_outcomes(passed=6)


def test_generic_migration_with_plain_sqlite3(
    lone_pytester: pytest.Pytester, sqlite_args: list[str]
) -> None:
    """Any schema: ini options name the opener and the migration callable."""
    lone_pytester.makepyfile(schema_inner="""
        def migrate(conn):
            conn.executescript(
                "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);"
                "INSERT INTO notes (body) VALUES ('hello');"
            )
            conn.commit()
        """)
    lone_pytester.makeini("""
        [pytest]
        sqlite_reset_open = sqlite3:connect
        sqlite_reset_migrate = schema_inner:migrate
        """)
    lone_pytester.makepyfile(test_inner="""
        import sqlite3

        def test_one(security_db):
            conn = sqlite3.connect(security_db)
            conn.execute("INSERT INTO notes (body) VALUES ('x')")
            conn.commit()
            conn.close()

        def test_two(security_db):
            conn = sqlite3.connect(security_db)
            assert conn.execute("SELECT id, body FROM notes").fetchall() == [(1, "hello")]
            conn.close()
        """)
    result = lone_pytester.runpytest(*sqlite_args)
    result.assert_outcomes(passed=2)


def test_bad_configuration_is_reported(
    lone_pytester: pytest.Pytester, sqlite_args: list[str]
) -> None:
    lone_pytester.makeini("""
        [pytest]
        sqlite_reset_migrate = nowhere_inner:migrate
        """)
    lone_pytester.makepyfile(test_inner="""
        import pytest

        def test_needs_db(security_db):
            pass

        @pytest.mark.sqlite_seed
        def test_bad_marker(security_conn):
            pass
        """)
    result = lone_pytester.runpytest(*sqlite_args)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*cannot import 'nowhere_inner'*"])


def test_plugin_is_inert_when_unused(
    lone_pytester: pytest.Pytester, sqlite_args: list[str]
) -> None:
    lone_pytester.makeini("[pytest]\nsqlite_reset_migrate = nowhere_inner:migrate\n")
    lone_pytester.makepyfile(test_inner="def test_plain(): pass")
    result = lone_pytester.runpytest(*sqlite_args)
    result.assert_outcomes(passed=1)
