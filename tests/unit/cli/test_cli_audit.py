"""``ai-suite audit`` (filters, JSON, the read's own audit row, usage errors), ``audit archive``
and ``audit archives`` against a real security database in tmp_path."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from prometheus_client import CollectorRegistry

from services.security.audit import AuditEntry, AuditLog
from services.security.db import Database

Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def _no_audit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUDIT_RETENTION_DAYS", "AUDIT_ARCHIVE_BATCH_ROWS"):
        monkeypatch.delenv(name, raising=False)


def _rows(data_dir: Path, rows: list[tuple[str, str, str, timedelta]]) -> None:
    db = Database(data_dir / "security.db")
    try:
        log = AuditLog(db, CollectorRegistry())
        for user, action, outcome, age in rows:
            row_id = log.write(AuditEntry(action=action, outcome=outcome, user=user))
            stamp = (datetime.now(UTC) - age).isoformat(timespec="microseconds")
            with db.transaction() as conn:
                conn.execute("UPDATE audit_log SET ts = ? WHERE id = ?", (stamp, row_id))
    finally:
        db.close()


def _json_lines(result: Result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_alice_s_calls_of_the_last_hour(run: Run, migrated_data_dir: Path) -> None:
    hour = timedelta(hours=1)
    _rows(
        migrated_data_dir,
        [
            ("alice", "chat:create", "ok", hour * 2),
            ("alice", "chat:create", "ok", timedelta(minutes=5)),
            ("bob", "chat:create", "ok", timedelta(minutes=4)),
            ("alice", "tool:write_file", "denied", timedelta(minutes=3)),
        ],
    )
    rows = _json_lines(run("audit", "--user", "alice", "--since", "1h", "--json"))
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("chat:create", "ok"),
        ("tool:write_file", "denied"),
    ]  # oldest first
    table = run("audit", "--user", "alice", "--since", "1h")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "TIME", "USER", "ACTION"]
    assert [line.split()[4] for line in lines[1:]] == ["chat:create", "tool:write_file"]


def test_limit_keeps_the_newest_rows_and_zero_means_all(run: Run, migrated_data_dir: Path) -> None:
    _rows(
        migrated_data_dir, [("alice", f"a{i}", "ok", timedelta(minutes=10 - i)) for i in range(5)]
    )
    newest = _json_lines(run("audit", "--user", "alice", "--limit", "2", "--json"))
    assert [r["action"] for r in newest] == ["a3", "a4"]
    every = _json_lines(run("audit", "--user", "alice", "--limit", "0", "--json"))
    assert [r["action"] for r in every] == [f"a{i}" for i in range(5)]


def test_the_read_is_audited_with_its_filters_and_not_shown(
    run: Run, migrated_data_dir: Path
) -> None:
    first = _json_lines(run("audit", "--outcome", "denied", "--json"))
    assert first == []
    rows = _json_lines(run("audit", "--action", "audit.read", "--json"))
    assert len(rows) == 1  # the first read's row; the second read's own row is not listed
    assert rows[0]["user"].startswith("cli:")
    assert rows[0]["details"]["filters"] == {"outcome": "denied"}


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--since", "yesterday"], "--since"),
        (["--since", "1h", "--until", "2h"], "--until"),
        (["--limit", "5000"], "--limit"),
        (["--user", ""], "--user"),
        (["--until", "1h", "--follow"], "--until"),
    ],
)
def test_a_bad_filter_is_a_usage_error_naming_the_option(
    run: Run, migrated_data_dir: Path, args: list[str], option: str
) -> None:
    result = run("audit", *args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr


def test_no_database_says_how_to_start(run: Run, data_dir: Path) -> None:
    result = run("audit")
    assert result.exit_code == 1
    assert "ai-suite up" in result.stderr
    assert str(data_dir / "security.db") in result.stderr
    assert not data_dir.exists()


def test_archive_now_then_list_and_verify(
    run: Run, migrated_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rows(migrated_data_dir, [("alice", "old", "ok", timedelta(days=40))] * 3)
    _rows(migrated_data_dir, [("alice", "new", "ok", timedelta(days=1))])
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "30")
    monkeypatch.setenv("AUDIT_ARCHIVE_BATCH_ROWS", "2")
    archived = run("audit", "archive")
    assert archived.exit_code == 0, archived.output
    assert "archived 3 row(s) older than 30 days" in archived.stderr
    listed = run("audit", "archives", "--json")
    infos = _json_lines(listed)
    assert [(i["rows"], i["checksum"]) for i in infos] == [(2, "OK"), (1, "OK")]
    remaining = _json_lines(run("audit", "--limit", "0", "--json", "--user", "alice"))
    assert [r["action"] for r in remaining] == ["new"]
    # A damaged file: BAD, and the listing exits 1.
    path = Path(infos[0]["file"])
    path.write_bytes(gzip.compress(b'{"id": 1}\n'))
    damaged = run("audit", "archives")
    assert damaged.exit_code == 1
    assert "BAD" in damaged.stdout
    assert "failed verification" in damaged.stderr


def test_archive_with_retention_zero_keeps_everything(run: Run, migrated_data_dir: Path) -> None:
    _rows(migrated_data_dir, [("alice", "old", "ok", timedelta(days=4000))])
    result = run("audit", "archive", "--older-than-days", "0")
    assert result.exit_code == 0
    assert "every row is kept" in result.stderr
    assert len(_json_lines(run("audit", "--json", "--action", "old"))) == 1


def test_archive_into_an_unwritable_place_fails_and_keeps_the_rows(
    run: Run, migrated_data_dir: Path
) -> None:
    _rows(migrated_data_dir, [("alice", "old", "ok", timedelta(days=100))])
    (migrated_data_dir / "audit-archive").write_text("a file where the directory should be")
    result = run("audit", "archive")
    assert result.exit_code == 1
    assert "the rows are kept" in result.stderr
    assert len(_json_lines(run("audit", "--json", "--action", "old"))) == 1
