"""``ai-suite alerts``: the default notification channel, and Alertmanager's rendered config.

``listen`` receives Alertmanager's webhook and prints one line per alert and resolution
(stdout, so it can be piped); ``render-config`` writes alertmanager.yml with the Slack and
e-mail receivers configured in the environment (Alertmanager cannot read the environment).
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click

from services.monitoring.alerts_listener import AlertListener, Notification
from services.monitoring.config import ConfigError, render_alertmanager
from services.monitoring.settings import MonitoringSettings


def _settings() -> MonitoringSettings:
    # Invalid settings raise InvalidSettings: `ai-suite`'s entry point prints it as one line.
    return MonitoringSettings()


def _print(notification: Notification) -> None:
    click.echo(notification.line())
    sys.stdout.flush()


def _report(message: str) -> None:
    # stdout, like the alerts: a silent pipeline is the most important line of all.
    click.echo(f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}")
    sys.stdout.flush()


@click.group()
def alerts() -> None:
    """Alert notifications: listen for Alertmanager's webhook, render its configuration."""


@alerts.command("listen")
@click.option("--host", default=None, help="Address to listen on [default: AI_SUITE_HOST].")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on [default: ALERTS_LISTEN_PORT or 9095].",
)
@click.option(
    "--watchdog-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Report when no Watchdog arrived for this many seconds; 0: off"
    " [default: ALERTS_WATCHDOG_TIMEOUT_SECONDS or 300].",
)
def listen(host: str | None, port: int | None, watchdog_timeout: float | None) -> None:
    """Print every alert and resolution Alertmanager sends, until Ctrl-C; report when the
    Watchdog (dead man's switch) stops arriving."""
    settings = _settings()
    host = host or settings.host
    port = settings.alerts_listen_port if port is None else port
    timeout = settings.alerts_watchdog_timeout if watchdog_timeout is None else watchdog_timeout
    try:
        listener = AlertListener(
            host,
            port,
            on_notification=_print,
            watchdog_timeout=timeout or None,
            on_watchdog=_report,
        )
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            " (is another listener running? choose another --port)"
        ) from exc

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return: call it from another thread.
        threading.Thread(target=listener.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    click.echo(f"listening for Alertmanager webhooks on {listener.url} (Ctrl-C to stop)", err=True)
    try:
        listener.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


@alerts.command("render-config")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write alertmanager.yml to.",
)
def render_config(out_dir: Path) -> None:
    """Write alertmanager.yml with the receivers configured in the environment."""
    settings = _settings()
    try:
        path = render_alertmanager(out_dir, settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    channels = ["webhook " + settings.listener_url]
    if settings.slack_webhook_url is not None:
        channels.append("slack")
    if settings.email_enabled:
        channels.append(f"e-mail to {settings.email_to}")
    click.echo(f"wrote {path} ({', '.join(channels)})", err=True)
    click.echo(str(path))
