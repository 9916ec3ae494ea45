"""Settings of the ``ai-suite`` commands (the services never read them), from the environment:
the commands that talk to a running platform (CliSettings) and ``ai-suite up``'s restarts
(SupervisorSettings)."""

from __future__ import annotations

from typing import Literal

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


class SupervisorSettings(CoreSettings):
    """How ``ai-suite up`` restarts a service that exits (services/core/supervisor.py)."""

    restart_policy: Literal["on-failure", "never"] = env_field(
        "AI_SUITE_RESTART",
        default="on-failure",
        description="ai-suite up: on-failure restarts a service that exits or never becomes "
        "ready (with backoff, up to AI_SUITE_RESTART_LIMIT); never leaves it down.",
    )
    restart_limit: int = env_field(
        "AI_SUITE_RESTART_LIMIT",
        default=5,
        ge=0,
        description="ai-suite up: restarts of one service within AI_SUITE_RESTART_WINDOW "
        "seconds after which it is a crash loop and left down (ai-suite status says why).",
    )
    restart_window: float = env_field(
        "AI_SUITE_RESTART_WINDOW",
        default=60.0,
        gt=0,
        description="ai-suite up: seconds over which AI_SUITE_RESTART_LIMIT counts restarts.",
    )
    restart_backoff: float = env_field(
        "AI_SUITE_RESTART_BACKOFF",
        default=0.5,
        ge=0,
        description="ai-suite up: seconds before the first restart; doubled for each further "
        "restart within the window, up to AI_SUITE_RESTART_BACKOFF_MAX.",
    )
    restart_backoff_max: float = env_field(
        "AI_SUITE_RESTART_BACKOFF_MAX",
        default=30.0,
        ge=0,
        description="ai-suite up: the longest wait before a restart, in seconds.",
    )
