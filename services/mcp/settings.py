"""MCP server settings, from the environment."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import SecretStr, field_validator, model_validator

from services.core.settings import CoreSettings, env_field
from services.security.fairness import FairnessLimits

DEFAULT_ALLOWLIST = ("ls", "cat", "echo", "git", "python3", "pytest", "grep", "wc", "head", "tail")
_SPLIT = re.compile(rf"[,{re.escape(os.pathsep)}]")


def split_list(value: object) -> list[str]:
    """Comma- or os.pathsep-separated text (or a list) as a list of non-empty items."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else _SPLIT.split(str(value))
    return [str(item).strip() for item in items if str(item).strip()]


class McpSettings(CoreSettings):
    # Kept as text so pydantic-settings does not try to parse JSON from the variable; the
    # second name lets callers pass ``workspace_roots=[...]`` / ``command_allowlist=[...]``.
    workspace_roots_raw: str = env_field(
        "MCP_WORKSPACE_ROOTS",
        "workspace_roots",
        default="",
        description="Directories the file, git and command tools may touch "
        "(comma or os.pathsep separated); default <data_dir>/workspace.",
    )
    command_allowlist_raw: str = env_field(
        "MCP_COMMAND_ALLOWLIST",
        "command_allowlist",
        default=",".join(DEFAULT_ALLOWLIST),
        description="Programs run_command may start (comma or os.pathsep separated); per-program "
        "argument rules still apply (services/mcp/tools/argrules.py).",
    )
    command_timeout: float = env_field(
        "MCP_COMMAND_TIMEOUT",
        default=30.0,
        gt=0,
        description="Seconds a run_command child or a git tool may run before it is killed.",
    )
    tool_timeout: float = env_field(
        "MCP_TOOL_TIMEOUT",
        default=60.0,
        gt=0,
        description="Seconds any tool call may take before it is abandoned with an error.",
    )
    # The box every run_command child runs in (services/mcp/box.py, docs/security.md).
    bwrap_path: str = env_field(
        "MCP_BWRAP_PATH",
        default="bwrap",
        description="bubblewrap: a name looked up on the clean PATH, or an absolute path.",
    )
    command_network: bool = env_field(
        "MCP_COMMAND_NETWORK",
        default=False,
        description="Give run_command children the host's network (default: none at all).",
    )
    command_max_processes: int = env_field(
        "MCP_COMMAND_MAX_PROCESSES",
        default=256,
        ge=1,
        description="Most processes a run_command child may have at once (RLIMIT_NPROC, and a "
        "pids cgroup where one is writable).",
    )
    command_max_memory_bytes: int = env_field(
        "MCP_COMMAND_MAX_MEMORY_BYTES",
        default=4 * 1024**3,
        ge=64 * 1024**2,
        description="Address-space limit of a run_command child (RLIMIT_AS), in bytes.",
    )
    command_max_cpu_seconds: int = env_field(
        "MCP_COMMAND_MAX_CPU_SECONDS",
        default=120,
        ge=1,
        description="CPU seconds a run_command child may use (RLIMIT_CPU).",
    )
    command_max_file_bytes: int = env_field(
        "MCP_COMMAND_MAX_FILE_BYTES",
        default=1024**3,
        ge=1024,
        description="Largest file a run_command child may write (RLIMIT_FSIZE), in bytes.",
    )
    max_read_bytes: int = env_field(
        "MCP_MAX_READ_BYTES",
        default=1_048_576,
        ge=1,
        description="Most bytes read_file returns (and the largest file the search tools read).",
    )
    max_write_bytes: int = env_field(
        "MCP_MAX_WRITE_BYTES",
        default=1_048_576,
        ge=1,
        description="Largest content write_file accepts, in bytes.",
    )
    max_output_bytes: int = env_field(
        "MCP_MAX_OUTPUT_BYTES",
        default=65_536,
        ge=1,
        description="Most bytes of a command's or git tool's output that is kept.",
    )
    approval_ttl_seconds: float = env_field(
        "MCP_APPROVAL_TTL_SECONDS",
        default=3600.0,
        gt=0,
        description="Seconds a pending approval waits for an approver before it expires.",
    )
    approval_sweep_seconds: float = env_field(
        "MCP_APPROVAL_SWEEP_SECONDS",
        default=30.0,
        gt=0,
        description="How often the sweeper expires old approvals and closes interrupted calls.",
    )
    rate_limit_per_minute: int = env_field(
        "MCP_RATE_LIMIT_PER_MINUTE",
        default=300,
        ge=1,
        description="Tool calls a user may make per minute (a token bucket shared by every MCP"
        " process); refused calls count too.",
    )
    max_concurrent_per_key: int = env_field(
        "MCP_MAX_CONCURRENT_PER_KEY",
        default=8,
        ge=1,
        description="Tool calls of one user in progress at once, across every MCP process.",
    )
    allow_self_approval: bool = env_field(
        "MCP_ALLOW_SELF_APPROVAL",
        default=False,
        description="Let a requester approve their own request (single-user development).",
    )
    # New pending approvals reach the approvers (services/mcp/notify.py, docs/mcp.md).
    approval_webhook_url: str | None = env_field(
        "MCP_APPROVAL_WEBHOOK_URL",
        default=None,
        description="POST a JSON document here for every new pending approval (unset: no"
        " webhook).",
    )
    approval_webhook_secret: SecretStr | None = env_field(
        "MCP_APPROVAL_WEBHOOK_SECRET",
        default=None,
        description="Sign webhook bodies: X-AI-Suite-Signature: sha256=HMAC-SHA256(secret, body).",
    )
    approval_smtp_host: str | None = env_field(
        "MCP_APPROVAL_SMTP_HOST",
        default=None,
        description="E-mail every new pending approval through this SMTP server (unset: no"
        " e-mail); needs MCP_APPROVAL_SMTP_FROM and MCP_APPROVAL_SMTP_TO.",
    )
    approval_smtp_port: int = env_field(
        "MCP_APPROVAL_SMTP_PORT",
        default=587,
        ge=1,
        le=65535,
        description="Port of MCP_APPROVAL_SMTP_HOST (587: the mail submission port).",
    )
    approval_smtp_from: str = env_field(
        "MCP_APPROVAL_SMTP_FROM", default="", description="Sender address of approval e-mails."
    )
    approval_smtp_to: str = env_field(
        "MCP_APPROVAL_SMTP_TO",
        default="",
        description="Recipients of approval e-mails (comma separated).",
    )
    approval_smtp_starttls: bool = env_field(
        "MCP_APPROVAL_SMTP_STARTTLS",
        default=True,
        description="Upgrade the SMTP connection with STARTTLS before logging in or sending.",
    )
    approval_smtp_user: str | None = env_field(
        "MCP_APPROVAL_SMTP_USER", default=None, description="SMTP login (unset: no login)."
    )
    approval_smtp_password: SecretStr | None = env_field(
        "MCP_APPROVAL_SMTP_PASSWORD", default=None, description="SMTP password."
    )
    approval_notify_attempts: int = env_field(
        "MCP_APPROVAL_NOTIFY_ATTEMPTS",
        default=4,
        ge=1,
        le=20,
        description="Tries per notification before it counts as failed"
        ' (approval_notifications_total{outcome="failed"}).',
    )
    approval_notify_backoff_seconds: float = env_field(
        "MCP_APPROVAL_NOTIFY_BACKOFF_SECONDS",
        default=1.0,
        ge=0,
        description="First wait between tries; doubles each time (at most 30 times this).",
    )
    approval_notify_timeout_seconds: float = env_field(
        "MCP_APPROVAL_NOTIFY_TIMEOUT_SECONDS",
        default=10.0,
        gt=0,
        description="Timeout of one webhook request or SMTP conversation.",
    )
    # ``rag_url`` is the property below; the raw value is accepted under that name too.
    rag_url_raw: str | None = env_field(
        "RAG_URL",
        "rag_url",
        default=None,
        description="Base URL of the RAG service the rag_search tool calls; default "
        "http://AI_SUITE_HOST:RAG_PORT.",
    )

    @field_validator("workspace_roots_raw", "command_allowlist_raw", mode="before")
    @classmethod
    def _join(cls, value: object) -> str:
        return ",".join(split_list(value)) if isinstance(value, list | tuple) else str(value)

    @model_validator(mode="after")
    def _smtp_complete(self) -> McpSettings:
        if self.approval_smtp_host and not (self.approval_smtp_from and self.approval_smtp_to):
            raise ValueError(
                "MCP_APPROVAL_SMTP_HOST is set, so approval e-mails need a sender and"
                " recipients: set MCP_APPROVAL_SMTP_FROM and MCP_APPROVAL_SMTP_TO"
            )
        return self

    @property
    def approval_smtp_recipients(self) -> list[str]:
        return [address.strip() for address in self.approval_smtp_to.split(",") if address.strip()]

    @property
    def fairness_limits(self) -> FairnessLimits:
        return FairnessLimits(
            self.rate_limit_per_minute,
            self.max_concurrent_per_key,
            "MCP_RATE_LIMIT_PER_MINUTE",
            "MCP_MAX_CONCURRENT_PER_KEY",
            noun="tool calls",
        )

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
