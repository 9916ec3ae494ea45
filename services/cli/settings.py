"""Settings of the ``ai-suite`` commands that talk to a running platform (never read by a
service)."""

from __future__ import annotations

from pydantic import SecretStr

from services.core.settings import CoreSettings, env_field


class CliSettings(CoreSettings):
    api_key: SecretStr | None = env_field(
        "AI_SUITE_API_KEY",
        default=None,
        description="API key of `ai-suite approvals`, `ai-suite rag` (or --key) and of"
        " `ai-suite mcp stdio` (or --key-file; it has no key option, which `ps` would show).",
    )
    mcp_url: str | None = env_field(
        "MCP_URL",
        default=None,
        description="The MCP server `ai-suite mcp stdio` forwards to (--url wins); the base"
        " URL, /mcp is added. Default http://AI_SUITE_HOST:MCP_PORT.",
    )
