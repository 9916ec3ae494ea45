"""Typed settings shared by every service, read from the environment.

Each service subclasses :class:`CoreSettings` and passes an instance to its
``create_app(settings)`` factory; nothing reads the environment at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from services.core.limits import (
    DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_DEPTH,
    RequestLimits,
)
from services.core.settings_errors import InvalidSettings

LOOPBACK = "127.0.0.1"
ENV_FILE_NAME = ".env"
NO_ENV_FILE_VARIABLE = "AI_SUITE_NO_ENV_FILE"
DATA_DIR_VARIABLE = "AI_SUITE_DATA_DIR"
_TRUE = {"1", "true", "yes", "on"}
_DATA_DIR_KEYS = {"data_dir", DATA_DIR_VARIABLE.lower()}


def environ_value(name: str) -> str | None:
    """``os.environ[name]`` compared without case, as pydantic-settings reads it."""
    wanted = name.lower()
    return next((value for key, value in os.environ.items() if key.lower() == wanted), None)


def env_files(data_dir: object = None) -> tuple[Path, ...]:
    """The .env files the settings read, lowest precedence first (pydantic-settings lets a
    later file win): ``$AI_SUITE_DATA_DIR/.env``, then ``./.env`` of the working directory.
    The real environment wins over both, and a field given by name over everything.

    The data directory is the one the settings will have: given by name (``data_dir``), else
    ``AI_SUITE_DATA_DIR`` from the environment, else from ``./.env``, else ``./data``.
    ``AI_SUITE_NO_ENV_FILE=1`` (real environment only) turns both files off.
    """
    if (environ_value(NO_ENV_FILE_VARIABLE) or "").strip().lower() in _TRUE:
        return ()
    local = Path(ENV_FILE_NAME)
    if data_dir is None:
        data_dir = environ_value(DATA_DIR_VARIABLE)
    if data_dir is None and local.is_file():
        data_dir = dotenv_value(local, DATA_DIR_VARIABLE)
    data_env = Path(str(data_dir or "data")).expanduser() / ENV_FILE_NAME
    return tuple(path for path in (data_env, local) if path.is_file())


def dotenv_value(path: Path, name: str) -> str | None:
    """The value a .env file gives ``name`` (compared without case), or None."""
    from dotenv import dotenv_values

    wanted = name.lower()
    values = dotenv_values(path)
    return next((value for key, value in values.items() if key.lower() == wanted), None)


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
    host: str = env_field(
        "AI_SUITE_HOST",
        default=LOOPBACK,
        description="Address every service binds to and the others call it on; loopback by"
        " default so nothing is exposed to the network.",
    )
    log_level: str = env_field(
        "AI_SUITE_LOG_LEVEL",
        default="INFO",
        description="Log level of every service: DEBUG, INFO, WARNING, ERROR or CRITICAL"
        " (any case).",
    )

    gateway_port: int = env_field(
        "GATEWAY_PORT", default=8000, ge=0, le=65535, description="Port of the API gateway."
    )
    rag_port: int = env_field(
        "RAG_PORT", default=8002, ge=0, le=65535, description="Port of the RAG service."
    )
    mcp_port: int = env_field(
        "MCP_PORT", default=8020, ge=0, le=65535, description="Port of the MCP tool server."
    )
    prometheus_port: int = env_field(
        "PROMETHEUS_PORT",
        default=9090,
        ge=0,
        le=65535,
        description="Port of the Prometheus `ai-suite up` starts (when installed).",
    )
    alertmanager_port: int = env_field(
        "ALERTMANAGER_PORT",
        default=9093,
        ge=0,
        le=65535,
        description="Port of the Alertmanager `ai-suite up` starts (when installed).",
    )

    # Limits before work (docs/security.md). A service may override a default by
    # redeclaring the field in its settings class.
    max_body_bytes: int = env_field(
        "AI_SUITE_MAX_BODY_BYTES",
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1,
        description="Largest request body a service accepts (bytes); larger ones get 413 before"
        " they are read. The gateway forwards RAG and MCP requests, so raise it there too.",
    )
    max_json_depth: int = env_field(
        "AI_SUITE_MAX_JSON_DEPTH",
        default=DEFAULT_MAX_JSON_DEPTH,
        ge=1,
        description="Deepest nesting of [ and { in a JSON body; deeper bodies get 400 before"
        " any parser runs.",
    )
    body_read_timeout: float = env_field(
        "AI_SUITE_BODY_READ_TIMEOUT",
        default=DEFAULT_BODY_READ_TIMEOUT,
        gt=0,
        description="Seconds a request body may stall between two pieces before the request"
        " gets 408.",
    )
    max_header_bytes: int = env_field(
        "AI_SUITE_MAX_HEADER_BYTES",
        default=65_536,
        ge=1024,
        description="Most of an unfinished request line and header block a server buffers"
        " (uvicorn's h11_max_incomplete_event_size); beyond it the answer is 400.",
    )
    keep_alive_timeout: int = env_field(
        "AI_SUITE_KEEP_ALIVE_TIMEOUT",
        default=5,
        ge=1,
        description="Seconds an idle keep-alive connection stays open (uvicorn's"
        " timeout_keep_alive).",
    )
    header_read_timeout: float = env_field(
        "AI_SUITE_HEADER_READ_TIMEOUT",
        default=30.0,
        gt=0,
        description="Seconds a connection may take to send a complete request line and"
        " headers (from when it opens, or from the previous response); then it is closed.",
    )
    no_env_file: bool = env_field(
        NO_ENV_FILE_VARIABLE,
        default=False,
        description="Read no .env file (only the real environment); the test suite sets it."
        " Read from the real environment only.",
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InvalidSettings(type(self), exc) from exc

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Called at every construction, so the files are found from the environment and
        # working directory of that moment (a test's monkeypatched ones included).
        given = getattr(init_settings, "init_kwargs", {})  # keyed by field name or alias
        init_data_dir = next(
            (value for key, value in given.items() if key.lower() in _DATA_DIR_KEYS), None
        )
        files = env_files(init_data_dir)
        if not files:
            return (init_settings, env_settings, file_secret_settings)
        return (
            init_settings,
            env_settings,
            DotEnvSettingsSource(settings_cls, env_file=files),
            file_secret_settings,
        )

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        # Resolved once so that child processes and log lines agree on one path.
        return value.expanduser().resolve()

    @field_validator("log_level")
    @classmethod
    def _valid_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
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
