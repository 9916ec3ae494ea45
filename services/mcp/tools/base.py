"""What a tool is: a name, a JSON-schema'd argument model and an async function."""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from services.core.logging import redact
from services.mcp.sandbox import SandboxError, Workspace
from services.mcp.settings import McpSettings
from services.security.policy import TOOL_SENSITIVITY, Sensitivity
from services.security.rbac import Principal


class ToolError(Exception):
    """A tool could not do what was asked; ``status``/``code`` become the HTTP error."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "tool_error",
        status: int = 400,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        # Added to the error body next to message and code (for example, partial output).
        self.extra = extra or {}

    @classmethod
    def from_sandbox(cls, exc: SandboxError) -> ToolError:
        return cls(exc.message, code=exc.code, status=exc.status)


class ToolArgs(BaseModel):
    """Base of every tool's arguments: unknown fields are mistakes, not extras."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class ToolContext:
    """What a running tool may use; built per call by the pipeline."""

    settings: McpSettings
    workspace: Workspace
    principal: Principal
    http_client: httpx.AsyncClient
    authorization: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    service_started: float = 0.0


ToolFn = Callable[[ToolContext, Any], Awaitable[dict[str, Any]]]
Summarizer = Callable[[Any], dict[str, Any]]
# Limits that depend on the settings (sizes): raise ToolError. The pipeline runs it right
# after schema validation, before the rate limit and before any approval is created.
Precheck = Callable[[McpSettings, Any], None]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[ToolArgs]
    run: ToolFn
    summarize: Summarizer
    precheck: Precheck | None = None
    # What an approver is shown (stored with the approval request and in its audit rows);
    # ``summarize`` when not set. Secrets in it go through ``shown()``.
    describe: Summarizer | None = None

    @property
    def sensitivity(self) -> Sensitivity:
        # The one table lives in services/security/policy.py; a tool missing there fails loudly.
        return TOOL_SENSITIVITY[self.name]

    def input_schema(self) -> dict[str, Any]:
        return copy.deepcopy(_schema_of(self.args))


def shown(value: Any) -> Any:
    """``value`` with every string passed through the one redaction function.

    For what approvers and the audit log see; the approval stays bound to the real
    arguments through the SHA-256 of their canonical JSON (``args_hash``).
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [shown(item) for item in value]
    if isinstance(value, dict):
        return {key: shown(item) for key, item in value.items()}
    return value


@functools.cache
def _schema_of(model: type[ToolArgs]) -> dict[str, Any]:
    # Generating a JSON schema takes milliseconds; the models never change at runtime.
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema
