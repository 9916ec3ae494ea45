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

import click
import httpx
from filelock import FileLock, Timeout
from prometheus_client import CollectorRegistry

from services.cli.alerts import alerts
from services.cli.approvals import approvals
from services.cli.mcp import mcp
from services.cli.platform import (
    check_platform_settings,
    monitoring_installed,
    monitoring_services,
    platform_services,
)
from services.cli.rag import rag
from services.core.files import private_dir
from services.core.http import default_ssl_context
from services.core.settings import CoreSettings
from services.core.settings_errors import exit_on_invalid_settings
from services.core.supervisor import ServiceFailed, Supervisor
from services.security.audit import AuditLog, AuditWriteError
from services.security.db import Database
from services.security.keys import KeyStore, KeyStoreError
from services.security.migrations import LATEST_VERSION, current_version, migrate
from services.security.policy import ROLES, Role


def _err(message: str) -> None:
    click.echo(message, err=True)


def _settings() -> CoreSettings:
    return CoreSettings()


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Local AI Suite: gateway, tools, RAG and monitoring on your own machine."""


# --- db ---------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The security database (users, keys, roles, audit log, approvals)."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations and refresh the seed data."""
    settings = _settings()
    database = Database(settings.security_db_path)
    try:
        before = current_version(database)
        applied = migrate(database)
    finally:
        database.close()
    for migration in applied:
        _err(f"applied migration {migration.version}: {migration.name}")
    _err(
        f"{settings.security_db_path}: schema version {LATEST_VERSION}"
        + (" (already up to date)" if not applied and before == LATEST_VERSION else "")
    )


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


# --- status -----------------------------------------------------------------


def _probe(url: str, ready_path: str = "/ready") -> tuple[str, str]:
    try:
        # trust_env=False: never send probes of loopback services through HTTP_PROXY.
        response = httpx.get(
            url + ready_path, timeout=2.0, trust_env=False, verify=default_ssl_context()
        )
    except httpx.HTTPError as exc:
        return "down", type(exc).__name__
    if response.status_code == 200:
        return "ready", ""
    try:
        body = response.json()
    except ValueError:
        body = None
    names = body.get("not_ready") if isinstance(body, dict) else None
    if isinstance(names, list) and names:
        return "not ready", ", ".join(str(name) for name in names)
    # Not one of our services, or an unexpected answer: one line for the table.
    text = " ".join(response.text.split())[:80]
    return "not ready", f"HTTP {response.status_code}" + (f": {text}" if text else "")


@cli.command()
def status() -> None:
    """Show whether each service answers; exit status 1 if any is not ready."""
    settings = _settings()
    rows = []
    healthy = True
    probes = [(spec.name, spec.url, spec.ready_path) for spec in platform_services(settings)]
    if monitoring_installed():
        probes += [
            ("prometheus", settings.service_url(settings.prometheus_port), "/-/ready"),
            ("alertmanager", settings.service_url(settings.alertmanager_port), "/-/ready"),
        ]
    for name, url, ready_path in probes:
        state, detail = _probe(url, ready_path)
        healthy &= state == "ready"
        rows.append([name, url, state, detail])
    click.echo(_table(rows, ["SERVICE", "URL", "STATE", "DETAIL"]))
    if not healthy:
        sys.exit(1)


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
    lock = FileLock(str(run_dir / "up.lock"))
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
    supervisor = Supervisor(log_dir, echo=_err)
    code = 0
    try:
        _bootstrap_admin(settings)
        rows = []
        # Start everything at once (imports dominate start-up), then wait for each.
        started = time.monotonic()
        runs = []
        specs = platform_services(settings)
        monitoring, missing = monitoring_services(settings)
        if missing:
            _err(f"warning: running without Prometheus and Alertmanager: {missing}")
        for spec in [*specs, *monitoring]:
            spec = replace(spec, start_timeout=timeout)
            _err(f"starting {spec.name} on {spec.url} …")
            runs.append(supervisor.start(spec))
        for running in runs:
            if stop.is_set():
                break
            supervisor.wait_ready(running)
            rows.append(
                [
                    running.spec.name,
                    running.spec.url,
                    "ready",
                    f"{time.monotonic() - started:.1f}s",
                    str(running.process.pid),
                ]
            )
        if not stop.is_set():
            _err(_table(rows, ["SERVICE", "URL", "STATE", "STARTED IN", "PID"]))
            _err(f"logs: {log_dir}/<service>.log   stop: Ctrl-C")
        # A service that dies is reported, and the others keep running: Prometheus
        # must stay up to see it down and alert. Everything stops on Ctrl-C/SIGTERM.
        reported: set[str] = set()
        while not stop.is_set():
            for running in supervisor.exited():
                if running.spec.name in reported:
                    continue
                reported.add(running.spec.name)
                failure = ServiceFailed(
                    running.spec.name,
                    f"exited unexpectedly with code {running.process.returncode}; the other"
                    " services keep running (restart `ai-suite up` to start it again)",
                    running.log_tail(),
                )
                _err(f"error: {failure}")
                code = 1
            stop.wait(0.5)
    except ServiceFailed as exc:
        _err(f"error: {exc}")
        code = 1
    finally:
        supervisor.stop_all()
        lock.release()
        _err("all services stopped")
    sys.exit(code)


cli.add_command(approvals)
cli.add_command(alerts)
cli.add_command(mcp)
cli.add_command(rag)


def main() -> None:
    # Every command builds its settings inside: a bad variable is one line, no traceback.
    with exit_on_invalid_settings("ai-suite"):
        cli(prog_name="ai-suite")


if __name__ == "__main__":
    main()
