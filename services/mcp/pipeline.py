"""The one path every tool call takes, over REST and over MCP alike.

authenticate (done by the caller) → rate and concurrency limits → authorise the role →
validate arguments (schema, then size limits) → approval (create a request, or consume
an approved one) → intent row → execute with a timeout → outcome row → metrics.

Audit (issue 11, "audit that survives kill -9"): a call that is refused or waits for
approval writes exactly one row. A call that runs writes an intent row (outcome
``started``) before the tool starts and an outcome row (``ok``, ``error``, ``timeout``,
``cancelled``) after, linked by ``call_id``; an approval-gated call's intent row commits
in the same transaction as the approval's ``executed`` transition. If the process dies
in between, the next start closes the call with ``interrupted``
(``AuditLog.recover_interrupted``). If a row cannot be written the call fails (503), and
before the intent row is stored nothing has run.

The per-key rate and concurrency limits (services/security/fairness.py) come first,
right after authentication: every call counts, refused ones too, and a call refused by
them never reaches the approval step, so it never uses up an approval.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError

from services.core.metrics import LATENCY_BUCKETS
from services.mcp.approvals import ApprovalRefused, ApprovalStore
from services.mcp.sandbox import Workspace
from services.mcp.settings import McpSettings
from services.mcp.tools.base import ToolContext, ToolError, ToolSpec
from services.security.audit import (
    STARTED,
    AuditEntry,
    AuditLog,
    AuditTransaction,
    AuditWriteError,
)
from services.security.fairness import Fairness, FairnessUnavailable, Lease, LimitExceeded
from services.security.policy import tool_permission
from services.security.rbac import AccessControl, Principal

log = logging.getLogger("ai_suite.mcp.pipeline")
UNKNOWN_TOOL = "<unknown>"


class CallError(Exception):
    """A refused or failed call: becomes an HTTP error or an MCP ``is_error`` result."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.param = param
        self.extra = extra or {}


@dataclass
class CallResult:
    status: int  # 200 ran, 202 waiting for approval
    body: dict[str, Any] = field(default_factory=dict)


class ToolMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.executions = Counter(
            "mcp_tool_executions_total",
            "Tool calls by tool and outcome (ok, error, timeout, cancelled, denied, invalid,"
            " pending, rate_limited, not_found).",
            ["tool", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "mcp_tool_duration_seconds",
            "Time a tool ran (calls that executed).",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


def arguments_hash(tool: str, arguments: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the tool name and its validated arguments."""
    canonical = json.dumps(
        {"tool": tool, "arguments": arguments},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _validation_message(exc: ValidationError) -> tuple[str, str | None]:
    problems, first = [], None
    for err in exc.errors():
        loc = ".".join(str(part) for part in err.get("loc", ()))
        first = first or loc or None
        problems.append(f"{loc or 'arguments'}: {err.get('msg')}")
    return "invalid arguments: " + "; ".join(problems), first


class ToolPipeline:
    def __init__(
        self,
        *,
        settings: McpSettings,
        tools: dict[str, ToolSpec],
        access: AccessControl,
        audit: AuditLog,
        approvals: ApprovalStore,
        workspace: Workspace,
        http_client: httpx.AsyncClient,
        metrics: ToolMetrics,
        fairness: Fairness,
        started: float,
    ) -> None:
        self.settings = settings
        self.tools = tools
        self.access = access
        self.audit_log = audit
        self.approvals = approvals
        self.workspace = workspace
        self.http_client = http_client
        self.metrics = metrics
        self.fairness = fairness
        self.started = started
        self.owner = audit.owner  # the process named in this pipeline's intent rows

    def visible_tools(self, principal: Principal) -> list[tuple[ToolSpec, bool]]:
        """The tools ``principal`` may call, with whether each needs approval."""
        granted = self.access.allowed_permissions(principal)
        return [
            (spec, granted[tool_permission(name)])
            for name, spec in self.tools.items()
            if tool_permission(name) in granted
        ]

    async def call(
        self,
        principal: Principal,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        approval_id: str | None = None,
        authorization: str | None = None,
    ) -> CallResult:
        started = time.perf_counter()
        spec = self.tools.get(name)
        label = name if spec else UNKNOWN_TOOL
        call = _Call(self, principal, label, started)
        lease = await self._admit(call)
        try:
            return await self._checked_call(
                call, spec, name, arguments, approval_id=approval_id, authorization=authorization
            )
        finally:
            await self.fairness.release(lease)

    async def _admit(self, call: _Call) -> Lease | None:
        """The per-key rate and concurrency limits, before every other check.

        Every authenticated call counts, the refused ones too (unknown tool, denied,
        invalid): refusals must not be free to hammer. A call refused here never reaches
        the approval step, so it never uses up an approval.
        """
        try:
            return await self.fairness.admit(str(call.principal.user_id))
        except LimitExceeded as exc:
            return await call.refuse(
                "rate_limited", CallError(429, exc.code, exc.message, headers=exc.headers)
            )
        except FairnessUnavailable as exc:
            return await call.refuse("error", CallError(503, exc.code, exc.message))

    async def _checked_call(
        self,
        call: _Call,
        spec: ToolSpec | None,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        approval_id: str | None,
        authorization: str | None,
    ) -> CallResult:
        principal = call.principal
        if spec is None:
            await call.refuse(
                "not_found",
                CallError(404, "tool_not_found", f"no tool {name!r}; GET /v1/tools lists them"),
            )
        permission = tool_permission(name)
        decision = self.access.cached_check(principal, permission)  # on the loop when cached
        if decision is None:
            decision = await asyncio.to_thread(self.access.check, principal, permission)
        if not decision.allowed:
            await call.refuse(
                "denied",
                CallError(
                    403,
                    "permission_denied",
                    f"role {principal.role!r} may not use tool {name!r}",
                ),
            )
        try:
            args = spec.args.model_validate(arguments or {})
        except ValidationError as exc:
            message, param = _validation_message(exc)
            await call.refuse("invalid", CallError(400, "invalid_arguments", message, param=param))
        call.summary = spec.summarize(args)
        # What an approver sees: every argument the call runs with (secrets redacted).
        call.details = spec.describe(args) if spec.describe else call.summary
        if spec.precheck is not None:
            # Size limits before the approval: an admin must never be asked to approve a
            # call that cannot run.
            try:
                spec.precheck(self.settings, args)
            except ToolError as exc:
                await call.refuse("invalid", CallError(exc.status, exc.code, exc.message))
        if decision.requires_approval:
            digest = arguments_hash(name, args.model_dump(mode="json"))
            if not approval_id:
                return await call.request_approval(name, digest)
            await call.use_approval(approval_id, name, digest)
        else:
            await call.begin()
        return await call.execute(spec, args, authorization)


class _Call:
    """One call's audit and metrics bookkeeping: one row for a call that does not run,
    an intent and an outcome row for one that does."""

    def __init__(
        self, pipeline: ToolPipeline, principal: Principal, label: str, started: float
    ) -> None:
        self.p = pipeline
        self.principal = principal
        self.label = label
        self.started = started
        self.summary: dict[str, Any] = {}
        self.details: dict[str, Any] = {}
        self.approval_id: str | None = None
        self.call_id: str | None = None  # set once the intent row is written

    def _elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)

    def _entry(self, outcome: str, status: int | None, code: str | None = None) -> AuditEntry:
        details: dict[str, Any] = {"arguments": self.summary}
        if code:
            details["code"] = code
        if self.approval_id:
            details["approval_id"] = self.approval_id
        if outcome == STARTED:
            details["owner_pid"] = self.p.owner.pid
        return AuditEntry(
            action=f"tool:{self.label}",
            outcome=outcome,
            user=self.principal.user,
            user_id=self.principal.user_id,
            resource=self.label,
            status=status,
            duration_ms=None if outcome == STARTED else self._elapsed_ms(),
            details=details,
            call_id=self.call_id,
        )

    async def _audit(self, outcome: str, status: int, code: str | None = None) -> None:
        """The one row of a call that does not run."""
        try:
            await self.p.audit_log.awrite(self._entry(outcome, status, code))
        except AuditWriteError as exc:
            raise audit_unavailable(exc) from exc

    def _write_intent(self, tx: AuditTransaction) -> None:
        self.call_id = "call_" + uuid.uuid4().hex
        try:
            tx.begin_call(self._entry(STARTED, None), self.p.owner)
        except BaseException:
            self.call_id = None  # rolled back with the transaction
            raise

    async def begin(self) -> None:
        """The intent row of a call that needs no approval, before it runs."""
        try:
            await self.p.audit_log.acommit(self._write_intent)
        except AuditWriteError as exc:
            raise audit_unavailable(exc) from exc

    async def _finish(self, outcome: str, status: int, code: str | None) -> None:
        """The outcome row, closing the intent row of the same ``call_id``."""
        entry = self._entry(outcome, status, code)
        try:
            await self.p.audit_log.acommit(lambda tx: tx.end_call(entry))
        except AuditWriteError as exc:
            raise audit_unavailable(exc) from exc

    async def refuse(self, outcome: str, error: CallError) -> Any:
        self.p.metrics.executions.labels(self.label, outcome).inc()
        await self._audit(outcome, error.status, error.code)
        raise error

    async def request_approval(self, name: str, digest: str) -> CallResult:
        try:
            approval = await asyncio.to_thread(
                self.p.approvals.create, self.principal, name, digest, self.details
            )
        except AuditWriteError as exc:
            raise audit_unavailable(exc) from exc
        self.approval_id = approval.id
        self.p.metrics.executions.labels(self.label, "pending").inc()
        await self._audit("pending", 202, "approval_required")
        return CallResult(
            202,
            {
                "approval_id": approval.id,
                "status": approval.status,
                "expires_at": approval.expires_at,
                "tool": name,
                "message": f"tool {name!r} needs approval: an admin runs"
                f" `ai-suite approvals approve {approval.id}`; then repeat this call"
                " with the same arguments and this approval_id",
            },
        )

    async def use_approval(self, approval_id: str, name: str, digest: str) -> None:
        self.approval_id = approval_id
        try:
            # The approval's `executed` transition and the call's intent row commit
            # together: a crash cannot leave a used approval without the call it ran.
            await asyncio.to_thread(
                self.p.approvals.consume,
                approval_id,
                self.principal,
                name,
                digest,
                also=self._write_intent,
            )
        except ApprovalRefused as exc:
            await self.refuse("denied", CallError(exc.status, exc.code, exc.message))
        except AuditWriteError as exc:
            raise audit_unavailable(exc) from exc

    async def execute(self, spec: ToolSpec, args: Any, authorization: str | None) -> CallResult:
        ctx = ToolContext(
            settings=self.p.settings,
            workspace=self.p.workspace,
            principal=self.principal,
            http_client=self.p.http_client,
            authorization=authorization,
            service_started=self.p.started,
        )
        run_started = time.perf_counter()
        outcome, status, error = "ok", 200, None
        result: dict[str, Any] = {}
        try:
            result = await asyncio.wait_for(spec.run(ctx, args), self.p.settings.tool_timeout)
        except asyncio.CancelledError:
            # The caller went away (an MCP cancel, a shutdown): the tool was stopped where
            # it was. Close the intent row even so; shielded, so a second cancel cannot
            # stop the write half-way.
            self.p.metrics.executions.labels(spec.name, "cancelled").inc()
            await asyncio.shield(self._finish("cancelled", 499, "cancelled"))
            raise
        except TimeoutError:
            outcome, status = "timeout", 504
            error = CallError(
                504,
                "tool_timeout",
                f"tool {spec.name!r} did not finish within {self.p.settings.tool_timeout:g}s"
                " (MCP_TOOL_TIMEOUT)",
            )
        except ToolError as exc:
            outcome, status = "error", exc.status
            error = CallError(exc.status, exc.code, exc.message, extra=exc.extra)
        except Exception as exc:
            log.exception("tool %s failed unexpectedly", spec.name)
            outcome, status = "error", 500
            error = CallError(
                500, "tool_failed", f"tool {spec.name!r} failed: {type(exc).__name__}"
            )
        self.p.metrics.duration.labels(spec.name).observe(time.perf_counter() - run_started)
        self.p.metrics.executions.labels(spec.name, outcome).inc()
        await self._finish(outcome, status, error.code if error else None)
        if error is not None:
            raise error
        return CallResult(
            200, {"tool": spec.name, "result": result, "duration_ms": self._elapsed_ms()}
        )


def audit_unavailable(exc: AuditWriteError) -> CallError:
    return CallError(
        503,
        "audit_unavailable",
        f"{exc}. Check that the data directory is writable and the disk is not full.",
    )
