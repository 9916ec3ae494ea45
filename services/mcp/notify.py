"""Tell approvers about new pending approvals: a webhook and/or an e-mail.

Sent from the MCP server when an approval request is created, off the request path:
the assistant's call returns 202 at once and the delivery runs on a small thread pool.
Nothing is lost silently: each delivery is retried a bounded number of times
(tenacity, exponential backoff), then counted in
``approval_notifications_total{channel, outcome="failed"}`` and logged with the
approval id (the ApprovalNotificationsFailing alert watches the counter).

Webhook: ``POST`` of a JSON document; with a secret, the body's HMAC-SHA256 is sent as
``X-AI-Suite-Signature: sha256=<hex>`` so the receiver can check who sent it.
E-mail: plain text through SMTP, optionally STARTTLS and login.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter
from tenacity import Retrying, stop_after_attempt, wait_exponential

from services.core.http import default_ssl_context
from services.mcp.approvals import Approval
from services.mcp.settings import McpSettings

log = logging.getLogger("ai_suite.mcp.notify")

SIGNATURE_HEADER = "X-AI-Suite-Signature"
EVENT = "approval.requested"
OUTCOMES = ("sent", "failed")


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry, channels: list[str]) -> None:
        self.deliveries = Counter(
            "approval_notifications_total",
            "Notifications of new approval requests, by channel (webhook, email) and"
            " outcome (sent; failed after every retry).",
            ["channel", "outcome"],
            registry=registry,
        )
        # Configured channels exist at 0 from the start, so increase() sees the first one.
        for channel in channels:
            for outcome in OUTCOMES:
                self.deliveries.labels(channel, outcome)


def payload(approval: Approval) -> dict[str, Any]:
    """What a receiver gets: the request as the API shows it, and how to decide it."""
    return {
        "event": EVENT,
        "approval": approval.as_dict(),
        "decide": {
            "approve": f"ai-suite approvals approve {approval.id}",
            "reject": f"ai-suite approvals reject {approval.id} --reason TEXT",
            "watch": "ai-suite approvals watch",
        },
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, secret: str | None, timeout: float) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout

    def send(self, document: dict[str, Any]) -> None:
        body = json.dumps(document, sort_keys=True, default=str).encode()
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        response = httpx.post(
            self.url,
            content=body,
            headers=headers,
            timeout=self.timeout,
            verify=default_ssl_context(),
        )
        response.raise_for_status()


class EmailChannel:
    name = "email"

    def __init__(self, settings: McpSettings) -> None:
        self.host = settings.approval_smtp_host or ""
        self.port = settings.approval_smtp_port
        self.sender = settings.approval_smtp_from
        self.recipients = settings.approval_smtp_recipients
        self.starttls = settings.approval_smtp_starttls
        self.user = settings.approval_smtp_user
        self.password = (
            settings.approval_smtp_password.get_secret_value()
            if settings.approval_smtp_password
            else None
        )
        self.timeout = settings.approval_notify_timeout_seconds

    def message(self, document: dict[str, Any]) -> EmailMessage:
        approval = document["approval"]
        message = EmailMessage()
        message["Subject"] = (
            f"[ai-suite] approval needed: {approval['tool']} for {approval['user']}"
        )
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        arguments = json.dumps(approval["args_summary"], indent=2, sort_keys=True, default=str)
        message.set_content(
            f"{approval['user']} asks to run the tool {approval['tool']}.\n\n"
            f"id:        {approval['id']}\n"
            f"requested: {approval['created_at']}\n"
            f"expires:   {approval['expires_at']}\n"
            f"arguments (secrets redacted):\n{arguments}\n\n"
            f"Approve:  {document['decide']['approve']}\n"
            f"Reject:   {document['decide']['reject']}\n"
            f"Or decide with a key press: {document['decide']['watch']}\n"
        )
        return message

    def send(self, document: dict[str, Any]) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=default_ssl_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(self.message(document))


Channel = WebhookChannel | EmailChannel
# What a failed delivery raises: the peer refused, timed out, answered an error.
DELIVERY_ERRORS = (httpx.HTTPError, smtplib.SMTPException, ssl.SSLError, OSError)


class ApprovalNotifier:
    """Delivers each new approval to every configured channel, in the background."""

    def __init__(
        self,
        channels: list[Channel],
        metrics: NotifyMetrics,
        *,
        attempts: int,
        backoff_seconds: float,
    ) -> None:
        self.channels = channels
        self.metrics = metrics
        self.attempts = attempts
        self.backoff = backoff_seconds
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="approval-notify")
        self._closed = threading.Event()

    def submit(self, approval: Approval) -> None:
        """Queue the deliveries and return at once (called after the approval commits)."""
        document = payload(approval)
        for channel in self.channels:
            try:
                if self._closed.is_set():
                    raise RuntimeError("cannot schedule new futures after shutdown")
                self._pool.submit(self.deliver, channel, approval.id, document)
            except RuntimeError:  # the pool refuses work once close() began
                self._failed(channel, approval.id, "the MCP server is shutting down")

    def deliver(self, channel: Channel, approval_id: str, document: dict[str, Any]) -> bool:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=30 * self.backoff),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    channel.send(document)
        except DELIVERY_ERRORS as exc:
            self._failed(channel, approval_id, f"{type(exc).__name__}: {exc}")
            return False
        self.metrics.deliveries.labels(channel.name, "sent").inc()
        return True

    def _failed(self, channel: Channel, approval_id: str, why: str) -> None:
        self.metrics.deliveries.labels(channel.name, "failed").inc()
        log.error(
            "could not notify approvers of %s by %s after %d attempt(s): %s",
            approval_id,
            channel.name,
            self.attempts,
            why,
        )

    def close(self) -> None:
        """Finish the queued deliveries (bounded by the retries), then stop."""
        self._closed.set()
        self._pool.shutdown(wait=True)


def build_notifier(settings: McpSettings, registry: CollectorRegistry) -> ApprovalNotifier | None:
    """The notifier the settings configure, or None when no channel is configured."""
    channels: list[Channel] = []
    if settings.approval_webhook_url:
        channels.append(
            WebhookChannel(
                settings.approval_webhook_url,
                (
                    settings.approval_webhook_secret.get_secret_value()
                    if settings.approval_webhook_secret
                    else None
                ),
                settings.approval_notify_timeout_seconds,
            )
        )
    if settings.approval_smtp_host:
        channels.append(EmailChannel(settings))
    if not channels:
        return None
    return ApprovalNotifier(
        channels,
        NotifyMetrics(registry, [channel.name for channel in channels]),
        attempts=settings.approval_notify_attempts,
        backoff_seconds=settings.approval_notify_backoff_seconds,
    )
