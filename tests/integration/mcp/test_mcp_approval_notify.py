"""New pending approvals reach approvers: a real local HTTP server receives the webhook and
a real SMTP server (aiosmtpd) the e-mail; refused connections and 500s count as failures
after the retries, and the assistant's call never waits for a delivery."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from ai_suite_pytest.metrics import Contract, Metrics
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from prometheus_client import CollectorRegistry

from services.mcp.app import create_app
from services.mcp.notify import SIGNATURE_HEADER, signature
from services.mcp.settings import McpSettings
from tests.support.keys import make_key
from tests.support.live import free_port, serve_in_thread
from tests.support.webhook import webhook_receiver

SECRET = "hook-secret-0123456789"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhooks honour the proxy variables (a receiver is usually elsewhere); the local
    receiver here must be reached directly whatever the caller exported."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)


@contextmanager
def mcp_server(tmp_path: Path, **overrides: Any) -> Iterator[tuple[str, str, CollectorRegistry]]:
    data_dir = tmp_path / "data"
    key = make_key(data_dir / "security.db", "dev", "developer")
    registry = CollectorRegistry()
    settings = McpSettings(
        data_dir=data_dir,
        approval_notify_attempts=2,
        approval_notify_backoff_seconds=0,
        **overrides,
    )
    with serve_in_thread(create_app(settings, registry=registry)) as url:
        yield url, key, registry


def request_approval(url: str, key: str, path: str = "plan.txt") -> str:
    answer = httpx.post(
        f"{url}/tools/write_file/call",
        headers={"Authorization": f"Bearer {key}"},
        json={"arguments": {"path": path, "content": "hello\nworld"}},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["approval_id"])


def deliveries(registry: CollectorRegistry, channel: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "approval_notifications_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


def wait_for_count(registry: CollectorRegistry, channel: str, outcome: str, count: float) -> None:
    """Deliveries are asynchronous: wait (a safety limit, not a timing) for the counter."""
    event = threading.Event()
    for _ in range(600):
        if deliveries(registry, channel, outcome) >= count:
            return
        event.wait(0.1)
    raise AssertionError(f"approval_notifications_total{{{channel},{outcome}}} never {count}")


def test_the_webhook_gets_the_request_signed_and_counts_it(tmp_path: Path) -> None:
    with (
        webhook_receiver() as receiver,
        mcp_server(tmp_path, approval_webhook_url=receiver.url, approval_webhook_secret=SECRET) as (
            url,
            key,
            registry,
        ),
    ):
        assert deliveries(registry, "webhook", "sent") == 0
        approval_id = request_approval(url, key)
        [hook] = receiver.wait_for(1)
        wait_for_count(registry, "webhook", "sent", 1)

    document = json.loads(hook.body)
    assert hook.path == "/hooks/approvals"
    assert hook.headers["Content-Type"] == "application/json"
    assert hook.headers[SIGNATURE_HEADER] == signature(SECRET, hook.body)
    assert hook.headers[SIGNATURE_HEADER] != signature("another secret", hook.body)
    assert document["event"] == "approval.requested"
    assert document["approval"]["id"] == approval_id
    assert document["approval"]["user"] == "dev"
    assert document["approval"]["tool"] == "write_file"
    assert document["approval"]["args_summary"]["path"] == "plan.txt"
    assert document["decide"]["approve"] == f"ai-suite approvals approve {approval_id}"
    assert deliveries(registry, "webhook", "failed") == 0


def test_the_call_does_not_wait_for_a_slow_webhook(tmp_path: Path) -> None:
    with (
        webhook_receiver() as receiver,
        mcp_server(tmp_path, approval_webhook_url=receiver.url) as (
            url,
            key,
            registry,
        ),
    ):
        receiver.hold = threading.Event()
        request_approval(url, key)
        # The 202 is back while the receiver still holds its answer.
        receiver.wait_for(1)
        assert not receiver.hold.is_set()
        assert deliveries(registry, "webhook", "sent") == 0
        receiver.hold.set()
        wait_for_count(registry, "webhook", "sent", 1)


def test_a_webhook_answering_500_is_retried_then_counted_as_failed(tmp_path: Path) -> None:
    with (
        webhook_receiver(status=500) as receiver,
        mcp_server(tmp_path, approval_webhook_url=receiver.url) as (url, key, registry),
    ):
        request_approval(url, key)
        wait_for_count(registry, "webhook", "failed", 1)
        assert len(receiver.received) == 2  # MCP_APPROVAL_NOTIFY_ATTEMPTS=2
    assert deliveries(registry, "webhook", "sent") == 0


def test_a_refused_webhook_connection_counts_as_failed(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    with mcp_server(tmp_path, approval_webhook_url=nobody) as (url, key, registry):
        request_approval(url, key)
        wait_for_count(registry, "webhook", "failed", 1)
    assert deliveries(registry, "webhook", "sent") == 0


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login, auth_data.password))
            return AuthResult(success=auth_data.password == b"mail-password")
        return AuthResult(success=False, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=mailbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_an_email_reaches_the_approvers_through_a_real_smtp_server(
    tmp_path: Path, smtp_server: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp_server
    with mcp_server(
        tmp_path,
        approval_smtp_host="127.0.0.1",
        approval_smtp_port=port,
        approval_smtp_from="ai-suite@example.org",
        approval_smtp_to="ops@example.org, bob@example.org",
        approval_smtp_starttls=False,
        approval_smtp_user="ai-suite",
        approval_smtp_password="mail-password",
    ) as (url, key, registry):
        approval_id = request_approval(url, key)
        wait_for_count(registry, "email", "sent", 1)

    [(sender, recipients, raw)] = mailbox.messages
    message = message_from_bytes(raw)
    body = message.get_payload(decode=True).decode()
    assert sender == "ai-suite@example.org"
    assert recipients == ["ops@example.org", "bob@example.org"]
    assert message["Subject"] == "[ai-suite] approval needed: write_file for dev"
    assert f"id:        {approval_id}" in body
    assert '"path": "plan.txt"' in body
    assert f"ai-suite approvals approve {approval_id}" in body
    assert mailbox.logins == [(b"ai-suite", b"mail-password")]


def test_a_wrong_smtp_password_counts_as_failed(
    tmp_path: Path, smtp_server: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp_server
    with mcp_server(
        tmp_path,
        approval_smtp_host="127.0.0.1",
        approval_smtp_port=port,
        approval_smtp_from="ai-suite@example.org",
        approval_smtp_to="ops@example.org",
        approval_smtp_starttls=False,
        approval_smtp_user="ai-suite",
        approval_smtp_password="wrong",
    ) as (url, key, registry):
        request_approval(url, key)
        wait_for_count(registry, "email", "failed", 1)
    assert mailbox.messages == []
    assert len(mailbox.logins) == 2


def test_a_refused_smtp_connection_counts_as_failed(tmp_path: Path) -> None:
    with mcp_server(
        tmp_path,
        approval_smtp_host="127.0.0.1",
        approval_smtp_port=free_port(),
        approval_smtp_from="ai-suite@example.org",
        approval_smtp_to="ops@example.org",
    ) as (url, key, registry):
        request_approval(url, key)
        wait_for_count(registry, "email", "failed", 1)
    assert deliveries(registry, "email", "sent") == 0


def test_the_mcp_exposition_with_notifications_matches_the_contract(
    tmp_path: Path, smtp_server: tuple[Mailbox, int]
) -> None:
    contract = Path(__file__).resolve().parents[2] / "metrics_contract.yaml"
    _, port = smtp_server
    manager = Metrics(contract=Contract.load(contract))
    with (
        webhook_receiver(status=500) as receiver,
        mcp_server(
            tmp_path,
            approval_webhook_url=receiver.url,
            approval_smtp_host="127.0.0.1",
            approval_smtp_port=port,
            approval_smtp_from="ai-suite@example.org",
            approval_smtp_to="ops@example.org",
            approval_smtp_starttls=False,
        ) as (url, key, registry),
    ):
        watch = manager.watch(url, service="mcp")
        request_approval(url, key)
        wait_for_count(registry, "email", "sent", 1)
        wait_for_count(registry, "webhook", "failed", 1)
        watch.assert_contract()
        watch.assert_counter_delta(
            "approval_notifications_total", {"channel": "email", "outcome": "sent"}, delta=1
        )
        watch.assert_counter_delta(
            "approval_notifications_total", {"channel": "webhook", "outcome": "failed"}, delta=1
        )
        watch.assert_counter_delta(
            "approval_notifications_total", {"channel": "webhook", "outcome": "sent"}, delta=0
        )
    assert manager.close() == []
