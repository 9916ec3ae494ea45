"""Gateway settings, from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from services.core.settings import CoreSettings


class GatewaySettings(CoreSettings):
    inference_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("INFERENCE_URL", "inference_url"),
        description="OpenAI-compatible base URL of one inference server, e.g. "
        "http://127.0.0.1:8001/v1 (llama.cpp, vLLM, Ollama).",
    )
    model_registry: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("MODEL_REGISTRY", "model_registry"),
        description="YAML file with several backends, model aliases and fallback order.",
    )
    upstream_connect_timeout: float = Field(
        default=2.0,
        gt=0,
        validation_alias=AliasChoices("UPSTREAM_CONNECT_TIMEOUT", "upstream_connect_timeout"),
    )
    upstream_read_timeout: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices("UPSTREAM_READ_TIMEOUT", "upstream_read_timeout"),
    )
    upstream_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        validation_alias=AliasChoices("UPSTREAM_RETRIES", "upstream_retries"),
    )
    upstream_backoff_seconds: float = Field(
        default=0.2,
        ge=0,
        validation_alias=AliasChoices("UPSTREAM_BACKOFF_SECONDS", "upstream_backoff_seconds"),
    )
    breaker_failure_threshold: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("BREAKER_FAILURE_THRESHOLD", "breaker_failure_threshold"),
    )
    breaker_reset_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("BREAKER_RESET_SECONDS", "breaker_reset_seconds"),
    )

    @property
    def port(self) -> int:
        return self.gateway_port
