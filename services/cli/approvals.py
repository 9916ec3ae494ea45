"""``ai-suite approvals``: list, show, approve and reject tool approval requests.

Uses only the gateway's HTTP API (``/v1/approvals``) with an API key, never the
database: every decision goes through the same checks (admin role, no
self-approval, state machine) and lands in the audit log. The predecessor's CLI
wrote SQL directly and skipped all of that.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from typing import Any

import click
import httpx

from services.core.http import default_ssl_context
from services.core.settings import CoreSettings

KEY_ENV = "AI_SUITE_API_KEY"


def _gateway_url(explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/")
    settings = CoreSettings()
    return settings.service_url(settings.gateway_port)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300] or f"HTTP {response.status_code}"


def command_line(item: dict[str, Any]) -> str:
    """One line for a request's arguments: a shell-quoted command for ``run_command``."""
    arguments = item.get("args_summary") or {}
    argv = arguments.get("argv")
    if isinstance(argv, list) and all(isinstance(arg, str) for arg in argv):
        return _visible(shlex.join(argv))
    return ", ".join(f"{k}={_scalar(v)}" for k, v in sorted(arguments.items()))


def _scalar(value: Any) -> str:
    return _visible(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _visible(text: str) -> str:
    """Control characters escaped: an argument cannot fake a line or move the cursor."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _terminal_columns() -> int | None:
    """The terminal's width: $COLUMNS, else the terminal's; None when not writing to one."""
    if os.environ.get("COLUMNS", "").isdigit() or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters (at least 20), ending in "…" when cut."""
    width = max(width, 20)
    return text if len(text) <= width else text[: width - 1] + "…"


def details_lines(item: dict[str, Any]) -> list[str]:
    """Every field of one approval request, readable (``ai-suite approvals show``)."""
    lines = [
        f"id:          {item['id']}",
        f"tool:        {item['tool']}",
        f"status:      {item['status']}",
        f"requested by {item['user']} at {item['created_at']}",
        f"expires:     {item['expires_at']}",
    ]
    if item.get("decided_by") or item.get("decided_at"):
        lines.append(f"decided by  {item.get('decided_by')} at {item.get('decided_at')}")
    if item.get("reason"):
        lines.append(f"reason:      {_visible(item['reason'])}")
    if item.get("executed_at"):
        lines.append(f"executed:    {item['executed_at']}")
    if item.get("args_hash"):
        lines.append(f"args sha256: {item['args_hash']}  (the call must match exactly)")
    arguments = dict(item.get("args_summary") or {})
    argv = arguments.pop("argv", None)
    if isinstance(argv, list):
        lines.append(f"command:     {_visible(shlex.join(str(arg) for arg in argv))}")
        lines.append(f"argv ({len(argv)}):")
        lines += [
            f"  [{index}] {_visible(shlex.quote(str(arg)))}" for index, arg in enumerate(argv)
        ]
    preview = arguments.pop("preview", None)
    cut = arguments.pop("preview_truncated", False)
    for key, value in sorted(arguments.items()):
        if isinstance(value, list):
            lines.append(f"{key} ({len(value)}):")
            lines += [f"  {_scalar(entry)}" for entry in value]
        elif isinstance(value, str) and "\n" in value:
            lines.append(f"{key}:")
            lines += [f"  | {_visible(line)}" for line in value.splitlines()]
        else:
            lines.append(f"{key}: {_scalar(value)}")
    if preview is not None:
        size = arguments.get("bytes")
        note = f" (TRUNCATED: the first characters of {size} bytes)" if cut else " (complete)"
        lines.append(f"preview{note}:")
        lines += [f"  | {_visible(line)}" for line in str(preview).splitlines() or [""]]
        if cut:
            lines.append("  | … [truncated]")
    return lines


class Api:
    def __init__(self, base: str, key: str | None) -> None:
        if not key:
            raise click.UsageError(
                f"an API key is required: pass --key or set {KEY_ENV}"
                " (approving and rejecting need an admin key)"
            )
        self.base = base
        self.key = key

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base}/v1{path}"
        try:
            # trust_env=False: never send a loopback call through HTTP_PROXY.
            response = httpx.request(
                method,
                url,
                headers={"Authorization": f"Bearer {self.key}"},
                timeout=10.0,
                trust_env=False,
                verify=default_ssl_context(),
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise click.ClickException(
                f"cannot reach the gateway at {self.base} ({type(exc).__name__});"
                " is `ai-suite up` running? (set --gateway-url or GATEWAY_PORT otherwise)"
            ) from None
        if response.status_code == 401:
            raise click.ClickException(
                f"the gateway refused the API key: {_error_message(response)};"
                f" pass a valid key with --key or {KEY_ENV}"
            )
        if response.status_code == 403:
            raise click.ClickException(f"not allowed: {_error_message(response)}")
        if response.status_code >= 400:
            raise click.ClickException(f"{_error_message(response)} (HTTP {response.status_code})")
        return response.json()


key_option = click.option(
    "--key", envvar=KEY_ENV, default=None, help=f"API key (default: ${KEY_ENV})."
)
url_option = click.option(
    "--gateway-url",
    default=None,
    help="Gateway base URL (default: http://AI_SUITE_HOST:GATEWAY_PORT).",
)


@click.group()
def approvals() -> None:
    """Tool approval requests (through the gateway API)."""


@approvals.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "rejected", "expired", "cancelled", "executed"]),
    default="pending",
    show_default=True,
)
@click.option("--all", "show_all", is_flag=True, help="Every status, not only --status.")
@key_option
@url_option
def list_approvals(status: str, show_all: bool, key: str | None, gateway_url: str | None) -> None:
    """List approval requests (admins see everyone's; others their own)."""
    api = Api(_gateway_url(gateway_url), key)
    params = {} if show_all else {"status": status}
    items = api.request("GET", "/approvals", params=params)["data"]
    if not items:
        click.echo(f"no {'' if show_all else status + ' '}approval requests", err=True)
        return
    header = ["ID", "USER", "TOOL", "STATUS", "CREATED", "EXPIRES", "ARGUMENTS"]
    rows = [
        [
            item["id"],
            item["user"],
            item["tool"],
            item["status"],
            item["created_at"][:19],
            item["expires_at"][:19],
        ]
        for item in items
    ]
    # The arguments column takes what is left of the terminal (all of it when the output
    # goes to a pipe or file); `ai-suite approvals show ID` prints everything.
    columns = _terminal_columns()
    used = sum(max(len(str(x)) for x in col) + 2 for col in zip(header, *rows, strict=False))
    for row, item in zip(rows, items, strict=True):
        line = command_line(item)
        row.append(line if columns is None else _fit(line, columns - used))
    click.echo(_table(rows, header))


@approvals.command("show")
@click.argument("approval_id")
@key_option
@url_option
def show(approval_id: str, key: str | None, gateway_url: str | None) -> None:
    """Every argument of one request, exactly as it will run (secrets redacted)."""
    api = Api(_gateway_url(gateway_url), key)
    item = api.request("GET", f"/approvals/{approval_id}")
    click.echo("\n".join(details_lines(item)))


@approvals.command("approve")
@click.argument("approval_id")
@click.option("--reason", default=None, help="Optional note stored with the decision.")
@key_option
@url_option
def approve(approval_id: str, reason: str | None, key: str | None, gateway_url: str | None) -> None:
    """Approve a pending request; the requester then repeats the call to run it once."""
    api = Api(_gateway_url(gateway_url), key)
    body = {"reason": reason} if reason else {}
    item = api.request("POST", f"/approvals/{approval_id}/approve", json=body)
    click.echo(
        f"approved {item['id']} ({item['tool']} for {item['user']});"
        f" usable until {item['expires_at']}",
        err=True,
    )


@approvals.command("reject")
@click.argument("approval_id")
@click.option("--reason", required=True, help="Why; shown to the requester.")
@key_option
@url_option
def reject(approval_id: str, reason: str, key: str | None, gateway_url: str | None) -> None:
    """Reject a pending request with a reason."""
    api = Api(_gateway_url(gateway_url), key)
    item = api.request("POST", f"/approvals/{approval_id}/reject", json={"reason": reason})
    click.echo(f"rejected {item['id']} ({item['tool']} for {item['user']})", err=True)
