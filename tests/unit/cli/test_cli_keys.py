"""``ai-suite keys create|list|revoke`` against a real SQLite file in tmp_path."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from services.security.db import Database
from services.security.keys import PREFIX_LENGTH, KeyStore, hash_key

KEY = re.compile(r"ais_[A-Za-z0-9_-]{43}")

pytestmark = pytest.mark.usefixtures("migrated_data_dir")

Run = Callable[..., Result]


def create(run: Run, *args: str) -> str:
    result = run("keys", "create", *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def table(result: Result) -> list[dict[str, str]]:
    """The rows of a ``keys list`` table, keyed by header; columns split on 2+ spaces."""
    header, *rows = result.stdout.splitlines()
    names = header.split()
    return [dict(zip(names, re.split(r"\s{2,}", row), strict=False)) for row in rows]


def test_create_prints_only_the_key_on_stdout(run: Run, migrated_data_dir: Path) -> None:
    result = run("keys", "create", "--user", "alice", "--role", "developer")

    assert result.exit_code == 0
    assert KEY.fullmatch(result.stdout.rstrip("\n"))
    assert result.stdout.count("\n") == 1
    key = result.stdout.strip()
    prefix = key[:PREFIX_LENGTH]
    assert f"created key {prefix}… for alice (role developer)" in result.stderr
    assert "shown only once" in result.stderr
    assert "expires" not in result.stderr
    assert key not in result.stderr
    # Only the hash is stored, and it belongs to alice.
    database = Database(migrated_data_dir / "security.db")
    try:
        row = database.query_one(
            "SELECT users.name FROM api_keys JOIN users ON users.id = user_id"
            " WHERE key_hash = ?",
            (hash_key(key),),
        )
    finally:
        database.close()
    assert row is not None
    assert row[0] == "alice"


def test_create_with_name_and_expiry(run: Run) -> None:
    before = datetime.now(UTC)
    result = run(
        "keys", "create", "--user", "bob", "--role", "viewer", "--name", "laptop",
        "--expires-in-days", "1",
    )  # fmt: skip

    assert result.exit_code == 0
    match = re.search(r", expires (\S+);", result.stderr)
    assert match, result.stderr
    expires = datetime.fromisoformat(match.group(1))
    assert before + timedelta(days=1) <= expires <= datetime.now(UTC) + timedelta(days=1)
    (row,) = table(run("keys", "list"))
    assert row["EXPIRES"] == expires.isoformat()[:19]
    assert row["NAME"] == "laptop"
    assert row["STATE"] == "active"


@pytest.mark.parametrize("days", ["0", "-1", "soon"])
def test_create_rejects_a_bad_expiry(run: Run, days: str) -> None:
    result = run("keys", "create", "--user", "a", "--role", "viewer", "--expires-in-days", days)

    assert result.exit_code == 2
    assert "--expires-in-days" in result.stderr
    assert result.stdout == ""


def test_create_rejects_an_unknown_role_as_a_usage_error(run: Run) -> None:
    result = run("keys", "create", "--user", "alice", "--role", "root")

    assert result.exit_code == 2
    assert "--role" in result.stderr
    assert "'root'" in result.stderr
    assert "developer" in result.stderr  # the choices are listed
    assert result.stdout == ""


def test_create_requires_user_and_role(run: Run) -> None:
    result = run("keys", "create", "--role", "viewer")

    assert result.exit_code == 2
    assert "--user" in result.stderr


def test_create_refuses_to_change_the_role_of_an_existing_user(run: Run) -> None:
    create(run, "--user", "alice", "--role", "developer")

    result = run("keys", "create", "--user", "alice", "--role", "admin")

    assert result.exit_code == 1
    assert result.stdout == ""  # no key was made
    assert "user 'alice' already exists with role 'developer', not 'admin'" in result.stderr
    assert len(table(run("keys", "list"))) == 1


def test_create_second_key_for_existing_user_with_same_role(run: Run) -> None:
    first = create(run, "--user", "alice", "--role", "developer")
    second = create(run, "--user", "alice", "--role", "developer")

    assert first != second
    assert [r["USER"] for r in table(run("keys", "list"))] == ["alice", "alice"]


def test_create_rejects_an_invalid_user_name(run: Run) -> None:
    result = run("keys", "create", "--user", "bad name!", "--role", "viewer")

    assert result.exit_code == 1
    assert "invalid user name 'bad name!'" in result.stderr
    assert result.stdout == ""


def test_list_shows_prefix_user_role_and_state_never_the_key(run: Run) -> None:
    alice = create(run, "--user", "alice", "--role", "developer", "--name", "ci")
    carol = create(run, "--user", "carol", "--role", "admin")

    result = run("keys", "list")

    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].split() == [
        "ID", "PREFIX", "USER", "ROLE", "STATE", "CREATED", "EXPIRES", "NAME",
    ]  # fmt: skip
    rows = table(result)
    assert [(r["ID"], r["PREFIX"], r["USER"], r["ROLE"], r["STATE"]) for r in rows] == [
        ("1", alice[:PREFIX_LENGTH], "alice", "developer", "active"),
        ("2", carol[:PREFIX_LENGTH], "carol", "admin", "active"),
    ]
    assert rows[0]["EXPIRES"] == "-"
    assert rows[0]["NAME"] == "ci"
    assert alice not in result.output
    assert carol not in result.output


def test_list_filters_by_user(run: Run) -> None:
    create(run, "--user", "alice", "--role", "developer")
    create(run, "--user", "carol", "--role", "admin")

    rows = table(run("keys", "list", "--user", "carol"))

    assert [r["USER"] for r in rows] == ["carol"]


def test_list_shows_expired_keys(run: Run, migrated_data_dir: Path) -> None:
    create(run, "--user", "alice", "--role", "viewer", "--expires-in-days", "1")
    database = Database(migrated_data_dir / "security.db")
    with database.transaction() as conn:
        conn.execute("UPDATE api_keys SET expires_at = '2000-01-01T00:00:00.000000+00:00'")
    database.close()

    (row,) = table(run("keys", "list"))

    assert row["STATE"] == "expired"


def test_list_when_empty_explains_how_to_create_a_key(run: Run) -> None:
    result = run("keys", "list")

    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no keys yet" in result.stderr
    assert "ai-suite keys create" in result.stderr


def test_list_works_on_a_brand_new_data_dir(run: Run, data_dir: Path) -> None:
    (data_dir / "security.db").unlink()

    result = run("keys", "list")

    assert result.exit_code == 0
    assert "no keys yet" in result.stderr


def test_revoke_by_prefix(run: Run, migrated_data_dir: Path) -> None:
    key = create(run, "--user", "alice", "--role", "developer")
    other = create(run, "--user", "bob", "--role", "viewer")
    prefix = key[:PREFIX_LENGTH]

    result = run("keys", "revoke", prefix)

    assert result.exit_code == 0
    assert f"revoked key {prefix} (id 1) of alice" in result.stderr
    assert result.stdout == ""
    assert [r["STATE"] for r in table(run("keys", "list"))] == ["revoked", "active"]
    database = Database(migrated_data_dir / "security.db")
    try:
        infos = {k.prefix: k for k in KeyStore(database).list_keys()}
    finally:
        database.close()
    assert infos[prefix].revoked_at is not None
    assert infos[other[:PREFIX_LENGTH]].revoked_at is None


def test_revoke_by_id(run: Run) -> None:
    create(run, "--user", "alice", "--role", "developer")
    key = create(run, "--user", "bob", "--role", "viewer")

    result = run("keys", "revoke", "2")

    assert result.exit_code == 0
    assert f"revoked key {key[:PREFIX_LENGTH]} (id 2) of bob" in result.stderr
    assert [r["STATE"] for r in table(run("keys", "list"))] == ["active", "revoked"]


def test_revoking_twice_fails_with_a_message(run: Run) -> None:
    key = create(run, "--user", "alice", "--role", "developer")
    assert run("keys", "revoke", key[:PREFIX_LENGTH]).exit_code == 0

    result = run("keys", "revoke", "1")

    assert result.exit_code == 1
    assert f"key {key[:PREFIX_LENGTH]} (id 1) was already revoked at" in result.stderr


@pytest.mark.parametrize(
    ("identifier", "message"),
    [
        ("ais_nothere", "no API key with prefix 'ais_nothere'"),
        ("99", "no API key with id '99'"),
    ],
)
def test_revoking_an_unknown_key_fails_with_a_message(
    run: Run, identifier: str, message: str
) -> None:
    create(run, "--user", "alice", "--role", "developer")

    result = run("keys", "revoke", identifier)

    assert result.exit_code == 1
    assert message in result.stderr
    assert "ai-suite keys list" in result.stderr
    assert [r["STATE"] for r in table(run("keys", "list"))] == ["active"]


def test_create_and_revoke_each_commit_with_their_audit_row(
    run: Run, migrated_data_dir: Path
) -> None:
    key = create(run, "--user", "carol", "--role", "viewer", "--name", "laptop")
    assert run("keys", "revoke", key[:PREFIX_LENGTH]).exit_code == 0
    database = Database(migrated_data_dir / "security.db")
    try:
        rows = database.query("SELECT action, outcome, user_name, details FROM audit_log")
        key_id = database.query_one("SELECT id FROM api_keys")[0]
        resources = {r[0] for r in database.query("SELECT resource FROM audit_log")}
    finally:
        database.close()
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("keys:create", "ok"),
        ("keys:revoke", "ok"),
    ]
    assert all(r["user_name"].startswith("cli:") for r in rows)
    assert '"user_created": true' in rows[0]["details"]
    assert key not in rows[0]["details"]
    assert resources == {f"key:{key_id}"}


def test_a_key_whose_audit_row_cannot_be_written_is_not_created(
    run: Run, migrated_data_dir: Path
) -> None:
    database = Database(migrated_data_dir / "security.db")
    try:
        with database.transaction() as conn:
            conn.execute(
                "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log"
                " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        result = run("keys", "create", "--user", "dave", "--role", "viewer")
        assert result.exit_code != 0
        assert "audit log write failed" in result.output
        # Neither the key nor its user: the change rolled back with its row.
        assert database.query_one("SELECT COUNT(*) FROM api_keys")[0] == 0
        assert database.query_one("SELECT COUNT(*) FROM users WHERE name = 'dave'")[0] == 0
    finally:
        database.close()
