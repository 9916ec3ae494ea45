"""``ai-suite restart SERVICE``: restart one service of the running ``ai-suite up``.

The request travels as a file in the data directory's run folder, which the
supervisor loop reads a few times a second (services/core/supervision.py); the other
services keep running. The command waits until the service is ready again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from services.core.settings import CoreSettings
from services.core.supervision import read_status, run_dir, send_request

# The supervisor loop looks for requests every 0.2 s; far longer means it is stuck.
ANSWER_TIMEOUT = 15.0


def _running(directory: Path, data_dir: Path) -> dict[str, Any]:
    status = read_status(directory)
    if status is None:
        raise click.ClickException(
            f"the platform is not running for {data_dir}: start it with `ai-suite up`"
            " (or set AI_SUITE_DATA_DIR to the data directory of the running one)"
        )
    return status


@click.command()
@click.argument("service")
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    help="Seconds to wait for the service to be ready again.",
)
@click.option("--no-wait", is_flag=True, help="Return once the supervisor took the request.")
def restart(service: str, timeout: float, no_wait: bool) -> None:
    """Restart one SERVICE (gateway, mcp, rag, ...) while the others keep running.

    A service the supervisor gave up on (crash loop) starts again with a fresh
    restart budget: fix its cause, then restart it.
    """
    data_dir = CoreSettings().data_dir
    directory = run_dir(data_dir)
    status = _running(directory, data_dir)
    services: dict[str, Any] = status.get("services") or {}
    if service not in services:
        raise click.ClickException(
            f"unknown service {service!r}; the running platform has: {', '.join(services)}"
        )
    before = services[service].get("restarts", 0)
    request_id = send_request(directory, "restart", service)
    answer = None
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while answer is None:
        if time.monotonic() > deadline:
            raise click.ClickException(
                f"`ai-suite up` (pid {status.get('supervisor_pid')}) did not take the request"
                f" within {ANSWER_TIMEOUT:g}s; see its output"
            )
        time.sleep(0.1)
        status = _running(directory, data_dir)
        answer = (status.get("answers") or {}).get(request_id)
    if answer.startswith("error:"):
        raise click.ClickException(answer.removeprefix("error: "))
    click.echo(answer, err=True)
    if no_wait:
        return
    deadline = time.monotonic() + timeout
    while True:
        current = (_running(directory, data_dir).get("services") or {}).get(service, {})
        restarted = current.get("restarts", 0) > before
        if restarted and current.get("state") == "ready":
            click.echo(f"{service} is ready again (pid {current.get('pid')})", err=True)
            return
        if restarted and current.get("state") == "failed":
            raise click.ClickException(f"{service} did not come back: {current.get('reason')}")
        if time.monotonic() > deadline:
            raise click.ClickException(
                f"{service} is not ready {timeout:g}s after the restart (state"
                f" {current.get('state')}); see `ai-suite status` and its log"
            )
        time.sleep(0.2)
