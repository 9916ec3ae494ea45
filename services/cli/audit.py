"""``ai-suite audit``: read the audit log, archive old rows, list the archives.

Reads the local security database directly (the admin on the machine, like ``ai-suite
keys``); filters, pages and following are :mod:`services.security.audit_query`'s, the
same as ``GET /v1/audit``. The read itself is audited (an ``audit.read`` row with the
filters, actor ``cli:<local account>``). Retention is :mod:`services.security.audit_archive`.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click
from prometheus_client import CollectorRegistry

from services.gateway.settings import GatewaySettings
from services.security.audit import AuditLog, AuditWriteError
from services.security.audit_archive import (
    ARCHIVE_DIR_NAME,
    ArchiveError,
    AuditArchiver,
    list_archives,
)
from services.security.audit_query import (
    AuditQueryError,
    AuditReader,
    parse_filter,
    parse_limit,
    read_entry,
)
from services.security.db import Database
from services.security.migrations import migrate

_COLUMNS = ["ID", "TIME", "USER", "ACTION", "OUTCOME", "STATUS", "RESOURCE", "REQUEST ID"]


def _actor() -> str:
    try:
        account = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        account = "unknown"
    return f"cli:{account} (ai-suite audit)"


def _open_database(settings: GatewaySettings) -> Database:
    path = settings.security_db_path
    if not path.exists():
        raise click.ClickException(
            f"no security database at {path}: start the platform once with `ai-suite up`"
            " (or set AI_SUITE_DATA_DIR to the data directory it uses)"
        )
    database = Database(path)
    migrate(database)
    return database


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        str(row["id"]),
        row["ts"][:23].replace("T", " "),
        row["user"] or "-",
        row["action"],
        row["outcome"],
        "-" if row["status"] is None else str(row["status"]),
        row["resource"] or "-",
        row["request_id"] or "-",
    ]


def _line(row: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(row, ensure_ascii=False)
    return "  ".join(_cells(row))


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


@click.group(invoke_without_command=True)
@click.option("--user", default=None, help="Only rows of this user name.")
@click.option("--action", default=None, help="Only this action, e.g. chat:create, tool:write_file.")
@click.option("--outcome", default=None, help="Only this outcome, e.g. ok, denied, error.")
@click.option("--since", default=None, help="From: a duration ago (10m, 1h, 2d) or ISO-8601.")
@click.option("--until", default=None, help="Before: a duration ago or ISO-8601.")
@click.option(
    "--limit",
    default="100",
    show_default=True,
    help="The newest N matching rows (shown oldest first); 0 for all of them.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new rows until Ctrl-C.")
@click.pass_context
def audit(
    ctx: click.Context,
    user: str | None,
    action: str | None,
    outcome: str | None,
    since: str | None,
    until: str | None,
    limit: str,
    as_json: bool,
    follow: bool,
) -> None:
    """Read the audit log of this machine's data directory (filters combine with AND)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        flt = parse_filter(user=user, action=action, outcome=outcome, since=since, until=until)
        everything = limit.strip() == "0"
        rows_wanted = 0 if everything else parse_limit(limit)
    except AuditQueryError as exc:
        raise click.BadParameter(exc.message, param_hint=f"'--{exc.parameter}'") from None
    if follow and flt.until is not None:
        raise click.BadParameter("cannot follow rows before a fixed time", param_hint="'--until'")
    settings = GatewaySettings()
    database = _open_database(settings)
    try:
        reader = AuditReader(database)
        try:
            own = AuditLog(database, CollectorRegistry()).write(
                read_entry(flt, user=_actor(), user_id=None, via="ai-suite audit", follow=follow)
            )
        except AuditWriteError as exc:
            raise click.ClickException(f"{exc}; nothing was read") from exc
        if everything:
            rows = list(reader.export(flt, order="asc"))
        else:
            rows = reader.page(flt, limit=rows_wanted, order="desc").rows[::-1]
        # This read's own row is not shown; a follow goes on after the newest row listed.
        after = max([own, *(row["id"] for row in rows)])
        rows = [row for row in rows if row["id"] != own]
        if as_json:
            for row in rows:
                click.echo(_line(row, True))
        elif rows:
            click.echo(_table([_cells(row) for row in rows], _COLUMNS))
        elif not follow:
            click.echo("no audit rows match", err=True)
        if follow:
            if not as_json and not rows:
                click.echo("  ".join(_COLUMNS))
            try:
                for row in reader.follow(flt, after_id=after):
                    click.echo(_line(row, as_json))
            except KeyboardInterrupt:
                return
    finally:
        database.close()


@audit.command("archive")
@click.option(
    "--older-than-days",
    type=click.IntRange(min=0),
    default=None,
    help="Override AUDIT_RETENTION_DAYS for this run (0 keeps everything).",
)
def archive(older_than_days: int | None) -> None:
    """Archive rows older than the retention age now (the gateway also does it periodically)."""
    settings = GatewaySettings()
    days = settings.audit_retention_days if older_than_days is None else older_than_days
    if days == 0:
        click.echo("retention is 0 (AUDIT_RETENTION_DAYS): every row is kept", err=True)
        return
    database = _open_database(settings)
    archive_dir = settings.data_dir / ARCHIVE_DIR_NAME
    try:
        archiver = AuditArchiver(
            database,
            archive_dir,
            retention_days=days,
            batch_rows=settings.audit_archive_batch_rows,
        )
        try:
            batches = archiver.run()
        except ArchiveError as exc:
            raise click.ClickException(str(exc)) from exc
    finally:
        database.close()
    for batch in batches:
        click.echo(f"{batch.path}: {batch.rows} rows (ids {batch.first_id}-{batch.last_id})")
    total = sum(batch.rows for batch in batches)
    click.echo(f"archived {total} row(s) older than {days} days into {archive_dir}", err=True)


@audit.command("archives")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
def archives(as_json: bool) -> None:
    """List the archive files, each verified against its checksum; exit 1 if one is not OK."""
    settings = GatewaySettings()
    archive_dir: Path = settings.data_dir / ARCHIVE_DIR_NAME
    infos = list_archives(archive_dir) if archive_dir.is_dir() else []
    if not infos:
        click.echo(f"no audit archives in {archive_dir}", err=True)
        return
    rows = []
    for info in infos:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "file": str(info.path),
                        "rows": info.rows,
                        "first_id": info.first_id,
                        "last_id": info.last_id,
                        "first_ts": info.first_ts,
                        "last_ts": info.last_ts,
                        "checksum": info.checksum,
                        "problem": info.problem or None,
                    }
                )
            )
        rows.append(
            [
                info.path.name,
                "-" if info.rows is None else str(info.rows),
                f"{info.first_id}-{info.last_id}",
                f"{(info.first_ts or '-')[:19]} .. {(info.last_ts or '-')[:19]}",
                info.checksum,
                info.problem,
            ]
        )
    if not as_json:
        click.echo(_table(rows, ["FILE", "ROWS", "IDS", "TIME RANGE", "CHECKSUM", "PROBLEM"]))
    if not all(info.ok for info in infos):
        click.echo("some archives failed verification: restore them from a backup", err=True)
        sys.exit(1)
