"""``ai-suite db``: migrate, back up and restore the security database.

A restore replaces the file every service has open, so it refuses while anything
uses it: the running ``ai-suite up`` (it holds ``run/up.lock``) or any other process
with the database open (``python -m services.mcp``, a shell in ``sqlite3``). With
``--stop-services`` it stops the ``ai-suite up`` that runs the platform and the
platform's own service processes; anything else is listed with its pid to stop.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
import psutil
from filelock import FileLock, Timeout

from services.core.files import private_dir
from services.core.settings import CoreSettings
from services.security.backup import (
    BackupError,
    Verified,
    backup,
    backup_dir,
    default_backup_path,
    restore,
    verify,
)
from services.security.db import Database
from services.security.migrations import LATEST_VERSION, current_version, migrate

STOP_TIMEOUT_SECONDS = 60.0


def _err(message: str) -> None:
    click.echo(message, err=True)


def up_lock(data_dir: Path) -> FileLock:
    """The lock ``ai-suite up`` holds while it runs the platform for ``data_dir``."""
    return FileLock(str(private_dir(data_dir / "run") / "up.lock"))


def _holders(paths: list[Path]) -> list[psutil.Process]:
    """Processes of ours (not this one) with one of ``paths`` open."""
    wanted = {str(path) for path in paths}
    found = []
    for process in psutil.process_iter(["pid"]):
        if process.pid == os.getpid():
            continue
        try:
            if any(item.path in wanted for item in process.open_files()):
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            # Another user's process (cannot be ours to stop) or one that just ended.
            continue
    return found


def _describe(process: psutil.Process) -> str:
    try:
        return f"pid {process.pid}: {' '.join(process.cmdline())[:200]}"
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return f"pid {process.pid}"


def _is_platform_service(process: psutil.Process) -> bool:
    try:
        argv = process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
    return any(
        argv[i] == "-m" and argv[i + 1].startswith("services.") for i in range(len(argv) - 1)
    )


def _print_verified(verified: Verified, what: str) -> None:
    _err(
        f"{what} {verified.path}: {verified.size} bytes, integrity_check {verified.integrity},"
        f" schema version {verified.schema_version}, {verified.users} users,"
        f" {verified.keys} keys, {verified.audit_rows} audit rows"
    )


@click.group()
def db() -> None:
    """The security database (users, keys, roles, audit log, approvals)."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations and refresh the seed data."""
    settings = CoreSettings()
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


@db.command("backup")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def db_backup(path: Path | None) -> None:
    """Copy the security database to PATH while the services run, then verify the copy.

    Default PATH: <data_dir>/backups/security-YYYYmmddTHHMMSS.db (mode 0600). The path
    alone goes to stdout.
    """
    settings = CoreSettings()
    destination = path or default_backup_path(backup_dir(settings.data_dir))
    try:
        verified = backup(settings.security_db_path, destination.absolute())
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    _print_verified(verified, "backup")
    click.echo(str(verified.path))


@db.command("verify")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def db_verify(path: Path) -> None:
    """Check that PATH is a sound security database this version can restore."""
    try:
        verified = verify(path)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    _print_verified(verified, "verified")


@db.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--stop-services",
    is_flag=True,
    help="Stop the running `ai-suite up` (and the platform's services) first.",
)
def db_restore(path: Path, stop_services: bool) -> None:
    """Replace the security database with the backup PATH (verified first).

    Refuses while the services run unless --stop-services is given; the replaced file
    is kept as security.db.replaced-TIMESTAMP. Start the platform again afterwards.
    """
    settings = CoreSettings()
    target = settings.security_db_path
    try:
        verified = verify(path)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    _print_verified(verified, "backup")
    lock = up_lock(settings.data_dir)
    files = [target, Path(f"{target}-wal"), Path(f"{target}-shm")]
    up_running = _holders([Path(lock.lock_file)])
    users = [p for p in _holders(files) if p.pid not in {u.pid for u in up_running}]
    if (up_running or users) and not stop_services:
        lines = [f"  ai-suite up, {_describe(p)}" for p in up_running]
        lines += [f"  {_describe(p)}" for p in users]
        raise click.ClickException(
            f"services are using {target}; stop them first (Ctrl-C in the terminal of"
            " `ai-suite up`, or `kill -TERM PID`), or pass --stop-services:\n" + "\n".join(lines)
        )
    if stop_services:
        _stop(up_running + [p for p in users if _is_platform_service(p)])
        left = _holders(files)
        if left:
            raise click.ClickException(
                f"these processes still have {target} open and are not the platform's"
                " services; stop them yourself (`kill -TERM PID`), then run the restore"
                " again:\n" + "\n".join(f"  {_describe(p)}" for p in left)
            )
    try:
        # Held during the restore: an `ai-suite up` started meanwhile is refused.
        lock.acquire(timeout=STOP_TIMEOUT_SECONDS if stop_services else 0)
    except Timeout:
        raise click.ClickException(
            f"`ai-suite up` is running for {settings.data_dir} ({lock.lock_file} is locked);"
            " stop it first or pass --stop-services"
        ) from None
    try:
        restored = restore(path, target)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        lock.release()
    if restored.replaced:
        _err(f"kept the replaced database as {restored.replaced}")
    _err(f"restored {target} from {path}; start the platform with `ai-suite up`")


def _stop(processes: list[psutil.Process]) -> None:
    for process in processes:
        _err(f"stopping {_describe(process)}")
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            continue
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    alive = [p for p in processes if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _running(p)]
    if alive:
        raise click.ClickException(
            f"still running {STOP_TIMEOUT_SECONDS:.0f} s after SIGTERM: "
            + ", ".join(_describe(p) for p in alive)
            + "; stop them, then run the restore again"
        )


def _running(process: psutil.Process) -> bool:
    """Still running: a process that ended but that its parent has not reaped yet (a
    zombie) holds no files any more and counts as stopped."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
