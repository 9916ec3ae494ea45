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

    mcp_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MCP_URL", "mcp_url"),
        description="Base URL of the MCP server; default http://AI_SUITE_HOST:MCP_PORT.",
    )
    rag_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RAG_URL", "rag_url"),
        description="Base URL of the RAG service; default http://AI_SUITE_HOST:RAG_PORT.",
    )

    @property
    def port(self) -> int:
        return self.gateway_port

    @property
    def mcp_base_url(self) -> str:
        return (self.mcp_url or self.service_url(self.mcp_port)).rstrip("/")

    @property
    def rag_base_url(self) -> str:
        return (self.rag_url or self.service_url(self.rag_port)).rstrip("/")
