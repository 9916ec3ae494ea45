"""``ai-suite approvals``: list, show, approve and reject tool approval requests.

Uses only the gateway's HTTP API (``/v1/approvals``) with an API key, never the
database: every decision goes through the same checks (admin role, no
self-approval, state machine) and lands in the audit log. The predecessor's CLI
wrote SQL directly and skipped all of that.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import sys
import termios
import time
import tty
from datetime import UTC, datetime
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


# --- watch --------------------------------------------------------------------


def _duration(seconds: float) -> str:
    seconds = int(abs(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def watch_lines(item: dict[str, Any], now: datetime) -> list[str]:
    """One pending request as the watcher shows it: who, how old, how long left, and
    every argument it would run with (:func:`details_lines`)."""
    created = datetime.fromisoformat(item["created_at"])
    expires = datetime.fromisoformat(item["expires_at"])
    left = (expires - now).total_seconds()
    return [
        f"── {item['tool']} requested by {item['user']},"
        f" {_duration((now - created).total_seconds())} ago,"
        + (f" expires in {_duration(left)}" if left > 0 else " EXPIRED"),
        *details_lines(item),
    ]


class _Keys:
    """Single key presses from the terminal on stdin, or nothing when it is not one.

    The terminal stays in cbreak mode (no line buffering, no echo, Ctrl-C still works)
    for the whole watch, and keys are read from it directly: ``click.getchar`` would
    switch to raw mode with TCSAFLUSH and drop a key typed before the prompt appeared.
    A reason is read as a normal line, with the terminal as it was.
    """

    def __init__(self) -> None:
        self.interactive = sys.stdin.isatty()
        self._saved: list[Any] | None = None

    def __enter__(self) -> _Keys:
        if self.interactive:
            self._saved = termios.tcgetattr(sys.stdin.fileno())
            tty.setcbreak(sys.stdin.fileno())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, self._saved)

    def wait(self, seconds: float) -> str | None:
        """A key pressed within ``seconds``, or None (always None without a terminal)."""
        if not self.interactive:
            time.sleep(seconds)
            return None
        readable, _, _ = select.select([sys.stdin], [], [], seconds)
        return self.key() if readable else None

    def key(self) -> str:
        """The next key pressed (waits for it)."""
        data = os.read(sys.stdin.fileno(), 1)
        if not data:
            raise click.ClickException("the terminal closed")
        return data.decode(errors="replace")

    def line(self, prompt: str) -> str:
        """A line of text, typed with echo and editing (the terminal as it was)."""
        if self._saved is None:
            raise click.UsageError("a reason can only be typed on a terminal")
        cbreak = termios.tcgetattr(sys.stdin.fileno())
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, self._saved)
        try:
            return str(click.prompt(prompt, default="", show_default=False)).strip()
        finally:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, cbreak)


@approvals.command("watch")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between two looks at the pending requests.",
)
@key_option
@url_option
def watch(interval: float, key: str | None, gateway_url: str | None) -> None:
    """Follow pending requests live and decide each with a key press.

    a approves, r rejects (asks for a reason), s skips, q quits. Decisions go through
    the gateway like `approve`/`reject`: same checks, same audit log. Without a terminal
    on stdin the new requests are only printed.
    """
    api = Api(_gateway_url(gateway_url), key)
    done: set[str] = set()  # decided, skipped, or (without a terminal) printed
    with _Keys() as keys:
        if not keys.interactive:
            click.echo(
                "stdin is not a terminal: printing new requests only; decide them with"
                " `ai-suite approvals approve|reject ID`",
                err=True,
            )
        waiting_said = False
        while True:
            # Newest first, at most the API's 1000: the oldest are shown first from these.
            items = api.request("GET", "/approvals", params={"status": "pending", "limit": 1000})[
                "data"
            ]
            queue = [item for item in reversed(items) if item["id"] not in done]
            if not queue:
                if not waiting_said:
                    click.echo(
                        "no pending requests; waiting…" + (" (q quits)" if keys.interactive else "")
                    )
                    waiting_said = True
                if keys.wait(interval) in ("q", "Q"):
                    return
                continue
            waiting_said = False
            item = queue[0]
            click.echo("\n".join(watch_lines(item, datetime.now(UTC))))
            done.add(item["id"])
            if keys.interactive and not _decide(api, keys, item):
                return


def _decide(api: Api, keys: _Keys, item: dict[str, Any]) -> bool:
    """Ask for a, r, s or q; act on it. False when the user quits."""
    while True:
        click.echo("[a]pprove  [r]eject  [s]kip  [q]uit? ", nl=False)
        choice = keys.key().lower()
        click.echo(choice)
        try:
            if choice == "a":
                decided = api.request("POST", f"/approvals/{item['id']}/approve", json={})
                click.echo(
                    f"approved {decided['id']}; {decided['user']} may now repeat the call"
                    f" once, until {decided['expires_at']}"
                )
            elif choice == "r":
                reason = keys.line("reason (shown to the requester)")
                if not reason:
                    click.echo("a rejection needs a reason; nothing done")
                    continue
                decided = api.request(
                    "POST", f"/approvals/{item['id']}/reject", json={"reason": reason}
                )
                click.echo(f"rejected {decided['id']}")
            elif choice == "s":
                click.echo(f"skipped {item['id']} (still pending)")
            elif choice == "q":
                return False
            else:
                continue
        except click.ClickException as exc:
            # Decided or expired meanwhile, or not ours to decide: say so, keep watching.
            click.echo(f"error: {exc.format_message()}")
        return True
