"""The ``ai-suite`` command line.

Convention: what a script may want to capture (a new key) goes alone to stdout;
progress, tables meant for people and errors go to stderr.
"""

from __future__ import annotations

import getpass
import signal
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from filelock import Timeout
from prometheus_client import CollectorRegistry

from services.cli.alerts import alerts
from services.cli.approvals import approvals
from services.cli.audit import audit
from services.cli.db import db, up_lock
from services.cli.logs import logs
from services.cli.mcp import mcp
from services.cli.output import table as _table
from services.cli.platform import (
    check_platform_settings,
    monitoring_services,
    platform_services,
    restart_policy,
)
from services.cli.rag import rag
from services.cli.restart import restart
from services.cli.settings import SupervisorSettings
from services.cli.status import status
from services.core.files import private_dir
from services.core.settings import CoreSettings
from services.core.settings_errors import exit_on_invalid_settings
from services.core.supervision import ANSWERS_KEPT, clear_status, take_requests, write_status
from services.core.supervisor import ServiceFailed, State, Supervisor
from services.security.audit import AuditLog, AuditWriteError
from services.security.backup import start_scheduled_backups
from services.security.db import Database
from services.security.keys import KeyStore, KeyStoreError
from services.security.migrations import migrate
from services.security.policy import ROLES, Role
from services.security.settings import BackupSettings


def _err(message: str) -> None:
    click.echo(message, err=True)


def _settings() -> CoreSettings:
    return CoreSettings()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Local AI Suite: gateway, tools, RAG and monitoring on your own machine."""


# --- keys -------------------------------------------------------------------


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


def _audited_store(database: Database, command: str) -> KeyStore:
    """A key store whose changes commit with their audit row (``keys:create``/``revoke``),
    attributed to the local account that ran ``command``; the CLI has no metrics."""
    return KeyStore(
        database,
        audit=AuditLog(database, CollectorRegistry()),
        actor=f"cli:{_local_user()} ({command})",
    )


def _store(command: str = "ai-suite keys") -> tuple[Database, KeyStore]:
    database = Database(_settings().security_db_path)
    migrate(database)
    return database, _audited_store(database, command)


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--user", required=True, help="User name; created if it does not exist.")
@click.option("--role", type=click.Choice(list(ROLES)), required=True, help="Role of a new user.")
@click.option("--name", default="", help="A label for the key, e.g. the machine it is for.")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None, help="Expiry.")
def keys_create(user: str, role: str, name: str, expires_in_days: int | None) -> None:
    """Create a key. The key alone is printed on stdout, once; store it now."""
    database, store = _store()
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    try:
        created = store.create_key(user, role, name=name, expires_at=expires)
    except (KeyStoreError, AuditWriteError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.close()
    _err(
        f"created key {created.prefix}… for {created.user} (role {created.role})"
        + (f", expires {created.expires_at}" if created.expires_at else "")
        + "; it is shown only once"
    )
    click.echo(created.key)


@keys.command("list")
@click.option("--user", default=None, help="Only this user's keys.")
def keys_list(user: str | None) -> None:
    """List keys (prefixes only; keys themselves are never stored)."""
    database, store = _store()
    try:
        rows = [
            [
                str(k.id),
                k.prefix,
                k.user,
                k.role,
                k.state,
                k.created_at[:19],
                (k.expires_at or "-")[:19],
                k.name,
            ]
            for k in store.list_keys(user=user)
        ]
    finally:
        database.close()
    if not rows:
        _err("no keys yet; create one with `ai-suite keys create --user NAME --role ROLE`")
        return
    click.echo(
        _table(rows, ["ID", "PREFIX", "USER", "ROLE", "STATE", "CREATED", "EXPIRES", "NAME"])
    )


@keys.command("revoke")
@click.argument("key_id_or_prefix")
def keys_revoke(key_id_or_prefix: str) -> None:
    """Revoke a key by its id or prefix; it stops working at once in every service."""
    database, store = _store()
    try:
        info = store.revoke(key_id_or_prefix)
    except (KeyStoreError, AuditWriteError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.close()
    _err(f"revoked key {info.prefix} (id {info.id}) of {info.user}")


# --- up ---------------------------------------------------------------------


def _bootstrap_admin(settings: CoreSettings) -> None:
    database = Database(settings.security_db_path)
    try:
        migrate(database)
        store = _audited_store(database, "ai-suite up")
        if store.user_count() == 0:
            created = store.create_key("admin", Role.ADMIN, name="created by ai-suite up")
            _err("")
            _err("First run: created user 'admin' (role admin). Its API key, shown only once:")
            click.echo(created.key)
            _err("Store it now; create more keys with `ai-suite keys create`.")
            _err("")
    finally:
        database.close()


@cli.command()
@click.option(
    "--timeout", default=60.0, show_default=True, help="Seconds to wait for each service."
)
def up(timeout: float) -> None:
    """Start every service, wait until each is ready, and stop them all on Ctrl-C or SIGTERM."""
    settings = _settings()
    check_platform_settings()  # a bad variable of any service: one line, nothing started
    private_dir(settings.data_dir)  # 0700: key hashes, audit log, logs (docs/security.md)
    run_dir = private_dir(settings.data_dir / "run")
    lock = up_lock(settings.data_dir)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise click.ClickException(
            f"another `ai-suite up` is already running for {settings.data_dir};"
            " stop it first, or set AI_SUITE_DATA_DIR to use another data directory"
        ) from None

    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        _err(f"received {signal.Signals(signum).name}, stopping services…")
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    log_dir = settings.data_dir / "logs"
    answers: dict[str, str] = {}

    def publish(sup: Supervisor) -> None:
        write_status(run_dir, sup.snapshot(), answers)

    supervisor = Supervisor(log_dir, echo=_err, on_change=publish)
    for _stale in take_requests(run_dir):
        pass  # left by a run that died before answering; its requester gave up long ago
    backups = start_scheduled_backups(BackupSettings(), echo=_err)
    code = 0
    try:
        _bootstrap_admin(settings)
        # Start everything at once (imports dominate start-up), then follow each until
        # it is ready or given up on (a crash at start is restarted like any other).
        launched = time.time()
        specs = platform_services(settings)
        policy = restart_policy(SupervisorSettings())
        monitoring, missing = monitoring_services(settings)
        if missing:
            _err(f"warning: running without Prometheus and Alertmanager: {missing}")
        for spec in [*specs, *monitoring]:
            spec = replace(spec, start_timeout=timeout, restart=policy)
            _err(f"starting {spec.name} on {spec.url} …")
            supervisor.launch(spec)
        while not stop.is_set() and not supervisor.settled():
            _supervise(supervisor, run_dir, answers)
            stop.wait(0.1)
        if not stop.is_set():
            rows = []
            for service in supervisor.services.values():
                ready_in = f"{service.ready_at - launched:.1f}s" if service.ready_at else "-"
                rows.append(
                    [
                        service.spec.name,
                        service.spec.url,
                        str(service.state),
                        ready_in,
                        str(service.pid or "-"),
                    ]
                )
            _err(_table(rows, ["SERVICE", "URL", "STATE", "STARTED IN", "PID"]))
            _err(f"logs: {log_dir}/<service>.log   stop: Ctrl-C")
        # A service that exits is restarted under its policy; one in a crash loop is left
        # down and the others keep running (Prometheus must stay up to alert on it).
        while not stop.is_set():
            _supervise(supervisor, run_dir, answers)
            stop.wait(0.2)
        if any(s.state == State.FAILED for s in supervisor.services.values()):
            code = 1
    except ServiceFailed as exc:
        _err(f"error: {exc}")
        code = 1
    finally:
        if backups:
            backups.stop()
        supervisor.stop_all()
        clear_status(run_dir)
        lock.release()
        _err("all services stopped")
    sys.exit(code)


def _supervise(supervisor: Supervisor, run_dir: Path, answers: dict[str, str]) -> None:
    """One round: restarts due, readiness, then requests from `ai-suite restart`."""
    supervisor.tick()
    for request in take_requests(run_dir):
        if request.action != "restart":
            answers[request.id] = f"error: unknown request {request.action!r}"
        elif request.service not in supervisor.services:
            answers[request.id] = (
                f"error: no service {request.service!r} runs here; services:"
                f" {', '.join(supervisor.services)}"
            )
        else:
            answers[request.id] = supervisor.request_restart(request.service)
        while len(answers) > ANSWERS_KEPT:
            del answers[next(iter(answers))]
        write_status(run_dir, supervisor.snapshot(), answers)


cli.add_command(approvals)
cli.add_command(db)
cli.add_command(alerts)
cli.add_command(mcp)
cli.add_command(rag)
cli.add_command(audit)
cli.add_command(logs)
cli.add_command(status)
cli.add_command(restart)


def main() -> None:
    # Every command builds its settings inside: a bad variable is one line, no traceback.
    with exit_on_invalid_settings("ai-suite"):
        cli(prog_name="ai-suite")


if __name__ == "__main__":
    main()
