"""Gateway settings, from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr, field_validator

from services.core.settings import CoreSettings, env_field
from services.security.fairness import FairnessLimits


class GatewaySettings(CoreSettings):
    inference_url: str | None = env_field(
        "INFERENCE_URL",
        default=None,
        description="OpenAI-compatible base URL of one inference server, e.g. "
        "http://127.0.0.1:8001/v1 (llama.cpp, vLLM, Ollama).",
    )
    inference_chat_model: str | None = env_field(
        "INFERENCE_CHAT_MODEL",
        default=None,
        description="Name the INFERENCE_URL server serves for the alias 'chat'; default: the "
        "first model its GET /v1/models lists.",
    )
    inference_code_model: str | None = env_field(
        "INFERENCE_CODE_MODEL",
        default=None,
        description="Name the INFERENCE_URL server serves for the alias 'code'; default: the "
        "first model its GET /v1/models lists.",
    )
    inference_api_key: SecretStr | None = env_field(
        "INFERENCE_API_KEY",
        default=None,
        description="Sent to the INFERENCE_URL server as 'Authorization: Bearer ...'.",
    )
    inference_models_ttl_seconds: float = env_field(
        "INFERENCE_MODELS_TTL_SECONDS",
        default=60.0,
        gt=0,
        description="How long the model list discovered from INFERENCE_URL is reused.",
    )
    model_registry: Path | None = env_field(
        "MODEL_REGISTRY",
        default=None,
        description="YAML file with several backends, model aliases and fallback order.",
    )
    upstream_connect_timeout: float = env_field(
        "UPSTREAM_CONNECT_TIMEOUT",
        default=2.0,
        gt=0,
        description="Seconds to connect to a backend; short so that a down backend is reported "
        "(or skipped for the next one) quickly.",
    )
    upstream_read_timeout: float = env_field(
        "UPSTREAM_READ_TIMEOUT",
        default=300.0,
        gt=0,
        description="Seconds to wait for a backend's answer (between streamed chunks too); long "
        "because local models can be slow.",
    )
    upstream_retries: int = env_field(
        "UPSTREAM_RETRIES",
        default=2,
        ge=0,
        le=10,
        description="Retries per backend on connection errors and 502/503/504, before the next "
        "backend in the fallback order.",
    )
    upstream_backoff_seconds: float = env_field(
        "UPSTREAM_BACKOFF_SECONDS",
        default=0.2,
        ge=0,
        description="Base of the exponential backoff between retries (capped at 2 s).",
    )
    breaker_failure_threshold: int = env_field(
        "BREAKER_FAILURE_THRESHOLD",
        default=5,
        ge=1,
        description="Consecutive failed requests that open a backend's circuit (then it is "
        "skipped).",
    )
    breaker_reset_seconds: float = env_field(
        "BREAKER_RESET_SECONDS",
        default=30.0,
        gt=0,
        description="How long an open circuit stays open before one trial request.",
    )
    upstream_max_connections: int = env_field(
        "UPSTREAM_MAX_CONNECTIONS",
        default=64,
        ge=1,
        description="Connections per backend for inference requests (streams hold one until"
        " they end). A pool of its own: health checks, /ready and model discovery never wait"
        " behind streams.",
    )
    upstream_pool_timeout: float = env_field(
        "UPSTREAM_POOL_TIMEOUT",
        default=10.0,
        gt=0,
        description="How long an inference request waits for a free connection to a backend"
        " (UPSTREAM_MAX_CONNECTIONS in use) before it tries the next backend or gets 503.",
    )
    workers: int = env_field(
        "GATEWAY_WORKERS",
        default=1,
        ge=1,
        le=64,
        description="Gateway processes accepting on one port; /metrics sums their counters"
        " (prometheus_client multiprocess files under AI_SUITE_DATA_DIR/metrics-multiproc)."
        " On 2 cores more than 1 did not help (docs/gateway.md).",
    )
    threads: int = env_field(
        "GATEWAY_THREADS",
        default=8,
        ge=1,
        le=256,
        description="Threads for blocking work per gateway process (key lookups the cache"
        " cannot answer, audit writes); each keeps its own SQLite connections, so more only"
        " cost memory once writes queue on the database.",
    )
    rate_limit_per_minute: int = env_field(
        "GATEWAY_RATE_LIMIT_PER_MINUTE",
        default=600,
        ge=1,
        description="Requests a user may make per minute to the inference and forwarded"
        " routes (a token bucket shared by every gateway process); refused ones count too.",
    )
    max_concurrent_per_key: int = env_field(
        "GATEWAY_MAX_CONCURRENT_PER_KEY",
        default=8,
        ge=1,
        description="Requests of one user in progress at once (a stream until it ends), across"
        " every gateway process.",
    )

    audit_retention_days: int = env_field(
        "AUDIT_RETENTION_DAYS",
        default=90,
        ge=0,
        description="Audit rows older than this many days are moved to gzip JSONL files in"
        " AI_SUITE_DATA_DIR/audit-archive (checksummed, durable before the rows are deleted);"
        " 0 keeps every row in the database forever.",
    )
    audit_archive_interval_seconds: float = env_field(
        "AUDIT_ARCHIVE_INTERVAL_SECONDS",
        default=3600.0,
        gt=0,
        description="How often the gateway archives audit rows past AUDIT_RETENTION_DAYS (also"
        " once at start); `ai-suite audit archive` does it on demand.",
    )
    audit_archive_batch_rows: int = env_field(
        "AUDIT_ARCHIVE_BATCH_ROWS",
        default=2000,
        ge=1,
        le=100_000,
        description="Audit rows per archive file; audit writes wait while one batch is"
        " written and synced (about 150 ms for 2000 rows, benchmarks/bench_audit_archive.py).",
    )

    mcp_url: str | None = env_field(
        "MCP_URL",
        default=None,
        description="Base URL of the MCP server; default http://AI_SUITE_HOST:MCP_PORT.",
    )
    rag_url: str | None = env_field(
        "RAG_URL",
        default=None,
        description="Base URL of the RAG service; default http://AI_SUITE_HOST:RAG_PORT.",
    )

    @field_validator(
        "inference_chat_model", "inference_code_model", "inference_api_key", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `INFERENCE_CHAT_MODEL=` (e.g. compose's ${VAR:-}) means "not set", not a name.
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @property
    def port(self) -> int:
        return self.gateway_port

    @property
    def fairness_limits(self) -> FairnessLimits:
        return FairnessLimits(
            self.rate_limit_per_minute,
            self.max_concurrent_per_key,
            "GATEWAY_RATE_LIMIT_PER_MINUTE",
            "GATEWAY_MAX_CONCURRENT_PER_KEY",
        )

    @property
    def mcp_base_url(self) -> str:
        return (self.mcp_url or self.service_url(self.mcp_port)).rstrip("/")

    @property
    def rag_base_url(self) -> str:
        return (self.rag_url or self.service_url(self.rag_port)).rstrip("/")
