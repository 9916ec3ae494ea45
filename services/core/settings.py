"""Typed settings shared by every service, read from the environment.

Each service subclasses :class:`CoreSettings` and passes an instance to its
``create_app(settings)`` factory; nothing reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = "127.0.0.1"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class CoreSettings(BaseSettings):
    """Settings every service shares: data directory, bind address, ports, logging."""

    # populate_by_name also makes pydantic-settings read ``env_prefix + field name``
    # from the environment; the prefix keeps that to AI_SUITE_* so that generic
    # variables such as HOST, LOG_LEVEL or DATA_DIR set for other programs are ignored.
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, env_prefix="AI_SUITE_"
    )

    data_dir: Path = Field(
        default=Path("data"),
        validation_alias=_env("AI_SUITE_DATA_DIR"),
        description="Everything the platform writes goes under this directory.",
    )
    host: str = Field(default=LOOPBACK, validation_alias=_env("AI_SUITE_HOST"))
    log_level: str = Field(default="INFO", validation_alias=_env("AI_SUITE_LOG_LEVEL"))

    gateway_port: int = Field(default=8000, validation_alias=_env("GATEWAY_PORT", "gateway_port"))
    rag_port: int = Field(default=8002, validation_alias=_env("RAG_PORT", "rag_port"))
    mcp_port: int = Field(default=8020, validation_alias=_env("MCP_PORT", "mcp_port"))
    prometheus_port: int = Field(
        default=9090, validation_alias=_env("PROMETHEUS_PORT", "prometheus_port")
    )
    alertmanager_port: int = Field(
        default=9093, validation_alias=_env("ALERTMANAGER_PORT", "alertmanager_port")
    )

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
    def security_db_path(self) -> Path:
        return self.data_dir / "security.db"

    def service_url(self, port: int) -> str:
        return f"http://{self.host}:{port}"
