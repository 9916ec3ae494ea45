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


SCHEMA_SQL = """
CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);
INSERT INTO notes (body) VALUES ('from schema.sql');
"""

OTHER_MIGRATION = """
def migrate(conn):
    conn.executescript(
        "CREATE TABLE tags (name TEXT PRIMARY KEY); INSERT INTO tags VALUES ('from-marker');"
    )
    conn.commit()
"""


def test_template_from_a_sql_file_and_per_test_markers(
    lone_pytester: pytest.Pytester, sqlite_args: list[str]
) -> None:
    """The ini's SQL file is the default; a marker picks a migration or another SQL file."""
    lone_pytester.makefile(".sql", schema=SCHEMA_SQL)
    (lone_pytester.path / "sql").mkdir()
    (lone_pytester.path / "sql" / "other.sql").write_text("CREATE TABLE other (x INTEGER);")
    lone_pytester.makepyfile(other_migration_inner=OTHER_MIGRATION)
    lone_pytester.makeini("""
        [pytest]
        addopts = --strict-markers
        pythonpath = .
        sqlite_reset_schema = schema.sql
        """)
    lone_pytester.makepyfile(test_inner="""
        import sqlite3
        from contextlib import closing

        import pytest

        def tables(path):
            with closing(sqlite3.connect(path)) as conn:
                return {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'")}

        def test_ini_schema(sqlite_db):
            with closing(sqlite3.connect(sqlite_db)) as conn, conn:
                conn.execute("INSERT INTO notes (body) VALUES ('mine')")
            assert tables(sqlite_db) == {"notes"}

        @pytest.mark.sqlite_template(migrate="other_migration_inner:migrate")
        def test_marker_migrate(sqlite_db, sqlite_conn):
            assert tables(sqlite_db) == {"tags"}
            assert sqlite_conn.execute("SELECT name FROM tags").fetchall() == [("from-marker",)]

        @pytest.mark.sqlite_template(schema="sql/other.sql")
        def test_marker_schema(sqlite_db, sqlite_db_template):
            assert tables(sqlite_db) == {"other"}
            conn = sqlite_db_template.connect()
            assert conn.execute("SELECT count(*) FROM other").fetchone() == (0,)
            conn.close()

        def test_back_to_the_ini_schema(sqlite_db, sqlite_reset):
            with closing(sqlite3.connect(sqlite_db)) as conn:
                assert conn.execute("SELECT id, body FROM notes").fetchall() == [
                    (1, "from schema.sql")
                ]
            # One template per source and seed in this worker: ini, marker migrate, marker schema.
            assert len(sqlite_reset.templates._templates) == 3
        """)
    result = lone_pytester.runpytest(*sqlite_args)
    result.assert_outcomes(passed=4)


# Each wrong setting stops the run before any test, with exit code 4 (pytest.UsageError)
# and one line naming the key, the value and the fix.
USAGE_ERRORS = {
    "migrate-not-a-spec": (
        "sqlite_reset_migrate = schema_inner.migrate",
        "",
        [
            "ERROR: sqlite_reset: sqlite_reset_migrate = 'schema_inner.migrate' is not a"
            " 'package.module:attribute' spec*e.g. sqlite_reset_migrate = myapp.db:migrate"
        ],
    ),
    "migrate-not-importable": (
        "sqlite_reset_migrate = nowhere_inner:migrate",
        "",
        [
            "ERROR: sqlite_reset: sqlite_reset_migrate* = 'nowhere_inner:migrate': cannot import"
            " 'nowhere_inner'*add its folder to the ini option pythonpath*"
        ],
    ),
    "migrate-no-such-attribute": (
        "sqlite_reset_migrate = json:no_such_function",
        "",
        ["*'json:no_such_function': module 'json' has no attribute 'no_such_function'*"],
    ),
    "open-not-importable": (
        "sqlite_reset_migrate = json:loads\nsqlite_reset_open = nowhere_inner:open",
        "",
        ["ERROR: sqlite_reset: sqlite_reset_open = 'nowhere_inner:open': cannot import*"],
    ),
    "seed-line": (
        "sqlite_reset_migrate = json:loads\nsqlite_reset_seeds =\n    admin json:loads",
        "",
        [
            "ERROR: sqlite_reset: sqlite_reset_seeds: line 'admin json:loads' is not"
            " 'name = module:function'*"
        ],
    ),
    "seed-not-importable": (
        "sqlite_reset_migrate = json:loads\nsqlite_reset_seeds =\n    admin = nowhere_inner:admin",
        "",
        ["ERROR: sqlite_reset: sqlite_reset_seeds (admin) = 'nowhere_inner:admin': cannot*"],
    ),
    "deadline-not-a-number": (
        "sqlite_reset_migrate = json:loads\nsqlite_reset_deadline = soon",
        "",
        [
            "ERROR: sqlite_reset: sqlite_reset_deadline = 'soon' is not a positive number of"
            " seconds*e.g. sqlite_reset_deadline = 5"
        ],
    ),
    "deadline-zero": (
        "sqlite_reset_migrate = json:loads\nsqlite_reset_deadline = 0",
        "",
        ["ERROR: sqlite_reset: sqlite_reset_deadline = '0' is not a positive number*"],
    ),
    "schema-missing": (
        "sqlite_reset_schema = missing.sql",
        "",
        [
            "ERROR: sqlite_reset: sqlite_reset_schema = 'missing.sql': no such file"
            " */missing.sql; give the path of a .sql file relative to the rootdir*"
        ],
    ),
    "both-sources": (
        "sqlite_reset_migrate = json:loads\nsqlite_reset_schema = missing.sql",
        "",
        [
            "ERROR: sqlite_reset: sqlite_reset_migrate = 'json:loads' and sqlite_reset_schema ="
            " 'missing.sql' are both set*remove the other*"
        ],
    ),
    "no-source": (
        "",
        "",
        [
            "ERROR: sqlite_reset: sqlite_reset_migrate and sqlite_reset_schema are both unset,"
            " and test_inner.py::test_uses_db uses a database fixture*"
        ],
    ),
    "template-marker-two-arguments": (
        "sqlite_reset_migrate = json:loads",
        '@pytest.mark.sqlite_template(migrate="json:loads", schema="x.sql")',
        [
            "ERROR: sqlite_reset: sqlite_template(migrate='json:loads', schema='x.sql'): "
            "@pytest.mark.sqlite_template takes exactly one keyword argument*"
        ],
    ),
    "template-marker-positional": (
        "sqlite_reset_migrate = json:loads",
        '@pytest.mark.sqlite_template("json:loads")',
        ["ERROR: sqlite_reset: sqlite_template('json:loads'): *exactly one keyword argument*"],
    ),
    "template-marker-missing-file": (
        "sqlite_reset_migrate = json:loads",
        '@pytest.mark.sqlite_template(schema="nope.sql")',
        [
            "ERROR: sqlite_reset: @pytest.mark.sqlite_template(schema=...) = 'nope.sql': no such"
            " file*"
        ],
    ),
    "template-marker-not-importable": (
        "sqlite_reset_migrate = json:loads",
        '@pytest.mark.sqlite_template(migrate="nowhere_inner:migrate")',
        ["ERROR: sqlite_reset: *= 'nowhere_inner:migrate': cannot import 'nowhere_inner'*"],
    ),
    "seed-marker": (
        "sqlite_reset_migrate = json:loads",
        "@pytest.mark.sqlite_seed",
        ["ERROR: sqlite_reset: @pytest.mark.sqlite_seed(): takes one seed name*"],
    ),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_a_wrong_setting_stops_the_run_before_any_test(
    lone_pytester: pytest.Pytester, sqlite_args: list[str], case: str
) -> None:
    ini, marker, expected = USAGE_ERRORS[case]
    lone_pytester.makeini("[pytest]\n" + ini + "\n")
    lone_pytester.makepyfile(test_inner=f"""
import pytest

{marker}
def test_uses_db(sqlite_db):
    pass

def test_plain():
    pass
""")
    result = lone_pytester.runpytest(*sqlite_args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(expected)
    # A usage error, not a crash: no traceback, and no test ran (not even test_plain).
    assert "Traceback" not in result.stderr.str(), result.stderr.str()
    assert "passed" not in result.stdout.str()
    assert "error" not in result.stdout.str()


def test_plugin_is_inert_when_unused(
    lone_pytester: pytest.Pytester, sqlite_args: list[str]
) -> None:
    lone_pytester.makeini("[pytest]\nsqlite_reset_migrate = nowhere_inner:migrate\n")
    lone_pytester.makepyfile(test_inner="def test_plain(): pass")
    result = lone_pytester.runpytest(*sqlite_args)
    result.assert_outcomes(passed=1)


def test_under_xdist_the_controller_reports_an_unimportable_migration(
    lone_pytester: pytest.Pytester, sqlite_args: list[str]
) -> None:
    """A worker's UsageError would reach the user as xdist's INTERNALERROR: the controller
    imports the ini's callables before it starts any worker."""
    lone_pytester.makeini("[pytest]\nsqlite_reset_migrate = nowhere_inner:migrate\n")
    lone_pytester.makepyfile(test_inner="def test_uses_db(sqlite_db): pass")
    result = lone_pytester.runpytest_subprocess(*sqlite_args, "-p", "xdist", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(
        ["ERROR: sqlite_reset: sqlite_reset_migrate = 'nowhere_inner:migrate': cannot import*"]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
