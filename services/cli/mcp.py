"""``ai-suite mcp``: the MCP server for assistants that launch a command (stdio).

``ai-suite mcp stdio`` bridges stdin/stdout to the running MCP server's streamable
HTTP endpoint (services/mcp/bridge.py), so Claude Desktop, Cursor, VS Code and Cline
get the same tools, approvals and audit as any HTTP client. stdout carries only the
protocol; logs and errors go to stderr.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import anyio
import click

from services.cli.approvals import KEY_ENV
from services.cli.settings import CliSettings
from services.core.logging import configure_logging
from services.core.settings import CoreSettings

URL_ENV = "MCP_URL"
CREATE_KEY_HINT = "create one with `ai-suite keys create --user NAME --role developer`"


def default_url() -> str:
    """``MCP_URL``, else the platform's MCP server (``http://AI_SUITE_HOST:MCP_PORT``)."""
    settings = CliSettings()
    explicit = (settings.mcp_url or "").strip()
    if explicit:
        return explicit
    return settings.service_url(settings.mcp_port)


def read_key(key_file: Path | None) -> str:
    """The API key from ``--key-file`` or ``AI_SUITE_API_KEY``; never from the command line."""
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise click.ClickException(
                f"cannot read the key file {key_file}: {exc.strerror or exc}"
            ) from None
        if not key:
            raise click.ClickException(f"the key file {key_file} is empty: {CREATE_KEY_HINT}")
        return key
    secret = CliSettings().api_key
    key = secret.get_secret_value().strip() if secret else ""
    if not key:
        raise click.ClickException(
            f"{KEY_ENV} is not set: {CREATE_KEY_HINT} and put it in the assistant's"
            f" MCP configuration (env {KEY_ENV}), or pass --key-file"
        )
    return key


@click.group()
def mcp() -> None:
    """MCP for desktop assistants (Claude Desktop, Cursor, VS Code, Cline)."""


@mcp.command("stdio")
@click.option(
    "--url",
    default=None,
    help=f"The MCP server's base URL (default: ${URL_ENV}, else http://AI_SUITE_HOST:MCP_PORT).",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Read the API key from this file instead of ${KEY_ENV}.",
)
def stdio(url: str | None, key_file: Path | None) -> None:
    """Serve MCP on stdin/stdout, forwarded to the running MCP server.

    For assistants that launch a command. The key comes from the environment
    (AI_SUITE_API_KEY) or --key-file, never from an option that `ps` would show.
    """
    key = read_key(key_file)
    # Imported here: the MCP SDK is a large import that the other commands do not need.
    from services.mcp.bridge import BridgeError, Upstream, serve_stdio

    # A bad variable stops here as one line (services/core/settings_errors.py, through main).
    settings = CoreSettings()
    upstream = Upstream(url or default_url(), key)
    # Logs go to stderr: stdout belongs to the protocol.
    configure_logging("mcp-stdio", settings.log_level, stream=sys.stderr)
    # Every forwarded call is a few HTTP requests; their per-request lines are noise here.
    for name in ("httpx2", "mcp.client.streamable_http"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        anyio.run(serve_stdio, upstream)
    except BridgeError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        sys.exit(130)
