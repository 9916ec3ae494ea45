"""Typed settings shared by every service, read from the environment.

Each service subclasses :class:`CoreSettings` and passes an instance to its
``create_app(settings)`` factory; nothing reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.core.limits import (
    DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_DEPTH,
    RequestLimits,
)

LOOPBACK = "127.0.0.1"


def env_field(env_name: str, *other_names: str, default: Any, **field_kwargs: Any) -> Any:
    """A settings field read from the environment variable ``env_name``.

    Settings can also be built by field name (``GatewaySettings(gateway_port=0)``) because
    :class:`CoreSettings` sets ``populate_by_name``, so the field name is not listed here.
    ``other_names`` are extra accepted names, for a field whose Python name differs from the
    name callers use (``workspace_roots`` for ``workspace_roots_raw``); pydantic-settings reads
    them from the environment too. ``field_kwargs`` go to :func:`pydantic.Field` (constraints,
    description).
    """
    return Field(
        default=default, validation_alias=AliasChoices(env_name, *other_names), **field_kwargs
    )


class CoreSettings(BaseSettings):
    """Settings every service shares: data directory, bind address, ports, logging."""

    # populate_by_name also makes pydantic-settings read ``env_prefix + field name``
    # from the environment; the prefix keeps that to AI_SUITE_* so that generic
    # variables such as HOST, LOG_LEVEL or DATA_DIR set for other programs are ignored.
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, env_prefix="AI_SUITE_"
    )

    data_dir: Path = env_field(
        "AI_SUITE_DATA_DIR",
        default=Path("data"),
        description="Everything the platform writes goes under this directory.",
    )
    host: str = env_field("AI_SUITE_HOST", default=LOOPBACK)
    log_level: str = env_field("AI_SUITE_LOG_LEVEL", default="INFO")

    gateway_port: int = env_field("GATEWAY_PORT", default=8000)
    rag_port: int = env_field("RAG_PORT", default=8002)
    mcp_port: int = env_field("MCP_PORT", default=8020)
    prometheus_port: int = env_field("PROMETHEUS_PORT", default=9090)
    alertmanager_port: int = env_field("ALERTMANAGER_PORT", default=9093)

    # Limits before work (docs/security.md). A service may override a default by
    # redeclaring the field in its settings class.
    max_body_bytes: int = env_field("AI_SUITE_MAX_BODY_BYTES", default=DEFAULT_MAX_BODY_BYTES, ge=1)
    max_json_depth: int = env_field("AI_SUITE_MAX_JSON_DEPTH", default=DEFAULT_MAX_JSON_DEPTH, ge=1)
    body_read_timeout: float = env_field(
        "AI_SUITE_BODY_READ_TIMEOUT", default=DEFAULT_BODY_READ_TIMEOUT, gt=0
    )
    max_header_bytes: int = env_field("AI_SUITE_MAX_HEADER_BYTES", default=65_536, ge=1024)
    keep_alive_timeout: int = env_field("AI_SUITE_KEEP_ALIVE_TIMEOUT", default=5, ge=1)
    header_read_timeout: float = env_field("AI_SUITE_HEADER_READ_TIMEOUT", default=30.0, gt=0)

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        # Resolved once so that child processes and log lines agree on one path.
        return value.expanduser().resolve()

    @field_validator("gateway_port", "rag_port", "mcp_port", "prometheus_port", "alertmanager_port")
    @classmethod
    def _valid_port(cls, value: int) -> int:
        if not 0 <= value <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {value}")
        return value

    @field_validator("log_level")
    @classmethod
    def _valid_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(
                f"AI_SUITE_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}"
            )
        return level

    @property
    def request_limits(self) -> RequestLimits:
        return RequestLimits(
            max_body_bytes=self.max_body_bytes,
            max_json_depth=self.max_json_depth,
            body_read_timeout=self.body_read_timeout,
        )

    @property
    def security_db_path(self) -> Path:
        return self.data_dir / "security.db"

    @property
    def fairness_db_path(self) -> Path:
        """Per-key rate and concurrency state, shared by a service's processes."""
        return self.data_dir / "fairness.db"

    def service_url(self, port: int) -> str:
        return f"http://{self.host}:{port}"
