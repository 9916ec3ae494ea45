"""MCP server settings, from the environment."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator

from services.core.settings import CoreSettings

DEFAULT_ALLOWLIST = ("ls", "cat", "echo", "git", "python3", "pytest", "grep", "wc", "head", "tail")
_SPLIT = re.compile(rf"[,{re.escape(os.pathsep)}]")


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def split_list(value: object) -> list[str]:
    """Comma- or os.pathsep-separated text (or a list) as a list of non-empty items."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else _SPLIT.split(str(value))
    return [str(item).strip() for item in items if str(item).strip()]


class McpSettings(CoreSettings):
    # Kept as text so pydantic-settings does not try to parse JSON from the variable.
    workspace_roots_raw: str = Field(
        default="",
        validation_alias=_env("MCP_WORKSPACE_ROOTS", "workspace_roots"),
        description="Directories the file, git and command tools may touch "
        "(comma or os.pathsep separated); default <data_dir>/workspace.",
    )
    command_allowlist_raw: str = Field(
        default=",".join(DEFAULT_ALLOWLIST),
        validation_alias=_env("MCP_COMMAND_ALLOWLIST", "command_allowlist"),
    )
    command_timeout: float = Field(
        default=30.0, gt=0, validation_alias=_env("MCP_COMMAND_TIMEOUT", "command_timeout")
    )
    tool_timeout: float = Field(
        default=60.0, gt=0, validation_alias=_env("MCP_TOOL_TIMEOUT", "tool_timeout")
    )
    max_read_bytes: int = Field(
        default=1_048_576, ge=1, validation_alias=_env("MCP_MAX_READ_BYTES", "max_read_bytes")
    )
    max_write_bytes: int = Field(
        default=1_048_576, ge=1, validation_alias=_env("MCP_MAX_WRITE_BYTES", "max_write_bytes")
    )
    max_output_bytes: int = Field(
        default=65_536, ge=1, validation_alias=_env("MCP_MAX_OUTPUT_BYTES", "max_output_bytes")
    )
    approval_ttl_seconds: float = Field(
        default=3600.0,
        gt=0,
        validation_alias=_env("MCP_APPROVAL_TTL_SECONDS", "approval_ttl_seconds"),
    )
    approval_sweep_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias=_env("MCP_APPROVAL_SWEEP_SECONDS", "approval_sweep_seconds"),
    )
    rate_limit_per_minute: int = Field(
        default=300,
        ge=1,
        validation_alias=_env("MCP_RATE_LIMIT_PER_MINUTE", "rate_limit_per_minute"),
    )
    allow_self_approval: bool = Field(
        default=False,
        validation_alias=_env("MCP_ALLOW_SELF_APPROVAL", "allow_self_approval"),
        description="Let a requester approve their own request (single-user development).",
    )
    rag_url_raw: str | None = Field(default=None, validation_alias=_env("RAG_URL", "rag_url"))

    @field_validator("workspace_roots_raw", "command_allowlist_raw", mode="before")
    @classmethod
    def _join(cls, value: object) -> str:
        return ",".join(split_list(value)) if isinstance(value, list | tuple) else str(value)

    @property
    def workspace_roots(self) -> list[Path]:
        roots = split_list(self.workspace_roots_raw)
        if not roots:
            return [self.data_dir / "workspace"]
        return [Path(root).expanduser().resolve() for root in roots]

    @property
    def command_allowlist(self) -> frozenset[str]:
        return frozenset(split_list(self.command_allowlist_raw))

    @property
    def rag_url(self) -> str:
        return (self.rag_url_raw or self.service_url(self.rag_port)).rstrip("/")

    @property
    def gateway_url(self) -> str:
        return self.service_url(self.gateway_port)

    @property
    def port(self) -> int:
        return self.mcp_port
