"""``ai-suite approvals``: HTTP only, clear errors (the gateway is mocked with respx)."""

from __future__ import annotations

import httpx
import pytest
import respx
from click.testing import CliRunner

from services.cli.approvals import approvals

BASE = "http://gw.test"
ITEM = {
    "id": "apr_1",
    "user": "dev",
    "tool": "write_file",
    "status": "approved",
    "args_summary": {"path": "a.txt", "bytes": 3},
    "created_at": "2026-01-01T00:00:00.000000+00:00",
    "expires_at": "2026-01-01T01:00:00.000000+00:00",
}


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(
        approvals, [*args, "--gateway-url", BASE], env=env or {"AI_SUITE_API_KEY": "ais_k"}
    )


@respx.mock
def test_list_approve_reject() -> None:
    listing = respx.get(f"{BASE}/v1/approvals").mock(
        return_value=httpx.Response(200, json={"data": [{**ITEM, "status": "pending"}]})
    )
    approve = respx.post(f"{BASE}/v1/approvals/apr_1/approve").mock(
        return_value=httpx.Response(200, json=ITEM)
    )
    reject = respx.post(f"{BASE}/v1/approvals/apr_1/reject").mock(
        return_value=httpx.Response(200, json={**ITEM, "status": "rejected"})
    )
    result = invoke("list")
    assert result.exit_code == 0, result.output
    assert "apr_1" in result.stdout
    assert "path=a.txt" in result.stdout
    assert listing.calls.last.request.url.params["status"] == "pending"
    assert listing.calls.last.request.headers["authorization"] == "Bearer ais_k"
    result = invoke("approve", "apr_1", "--reason", "ok")
    assert result.exit_code == 0, result.output
    assert "approved apr_1" in result.stderr
    assert approve.calls.last.request.read() == b'{"reason":"ok"}'
    result = invoke("reject", "apr_1", "--reason", "no")
    assert result.exit_code == 0
    assert reject.called


@respx.mock
def test_empty_list_and_all() -> None:
    route = respx.get(f"{BASE}/v1/approvals").mock(
        return_value=httpx.Response(200, json={"data": []})
    )
    result = invoke("list", "--all")
    assert "no approval requests" in result.stderr
    assert "status" not in route.calls.last.request.url.params


def test_key_is_required() -> None:
    result = invoke("list", env={"AI_SUITE_API_KEY": ""})
    assert result.exit_code == 2
    assert "AI_SUITE_API_KEY" in result.output


def test_reject_requires_reason() -> None:
    assert invoke("reject", "apr_1").exit_code == 2


@respx.mock
@pytest.mark.parametrize(
    ("response", "fragment"),
    [
        (httpx.ConnectError("refused"), "cannot reach the gateway"),
        (
            httpx.Response(401, json={"error": {"message": "invalid API key"}}),
            "refused the API key",
        ),
        (httpx.Response(403, json={"error": {"message": "role"}}), "not allowed: role"),
        (httpx.Response(409, json={"error": {"message": "not pending"}}), "not pending (HTTP 409)"),
        (httpx.Response(500, text="oops"), "oops (HTTP 500)"),
    ],
)
def test_errors_are_clear(response, fragment: str) -> None:
    route = respx.post(f"{BASE}/v1/approvals/apr_1/approve")
    if isinstance(response, Exception):
        route.mock(side_effect=response)
    else:
        route.mock(return_value=response)
    result = invoke("approve", "apr_1")
    assert result.exit_code == 1
    assert fragment in result.stderr


def test_default_url_comes_from_settings(monkeypatch) -> None:
    from services.cli.approvals import _gateway_url

    monkeypatch.setenv("GATEWAY_PORT", "8123")
    monkeypatch.setenv("AI_SUITE_HOST", "127.0.0.1")
    assert _gateway_url(None) == "http://127.0.0.1:8123"


def test_watch_lines_show_age_expiry_and_every_argument() -> None:
    from datetime import datetime

    from services.cli.approvals import watch_lines

    item = {**ITEM, "status": "pending", "args_summary": {"path": "a.txt", "content": "x\ny"}}
    now = datetime.fromisoformat("2026-01-01T00:03:05+00:00")

    lines = watch_lines(item, now)

    assert lines[0] == "── write_file requested by dev, 3m05s ago, expires in 56m55s"
    assert "path: a.txt" in lines
    assert "  | y" in lines
    late = watch_lines(item, datetime.fromisoformat("2026-01-01T02:00:00+00:00"))
    assert late[0].endswith(", 2h00m ago, EXPIRED")


@respx.mock
def test_watch_without_a_terminal_prints_and_never_decides() -> None:
    """CliRunner's stdin is not a terminal: the watcher prints, then waits; a gateway
    that goes away ends it with the usual error (this is how the loop is left here)."""
    listing = respx.get(f"{BASE}/v1/approvals").mock(
        side_effect=[
            httpx.Response(200, json={"data": [{**ITEM, "status": "pending"}]}),
            httpx.Response(200, json={"data": [{**ITEM, "status": "pending"}]}),
            httpx.ConnectError("gone"),
        ]
    )
    decide = respx.post(url__regex=rf"{BASE}/v1/approvals/.*").mock(
        return_value=httpx.Response(500)
    )

    result = invoke("watch", "--interval", "0.1")

    assert result.exit_code == 1
    assert "stdin is not a terminal" in result.stderr
    assert result.stdout.count("id:          apr_1") == 1
    assert "no pending requests; waiting…\n" in result.stdout
    assert "cannot reach the gateway" in result.stderr
    assert listing.call_count == 3
    assert not decide.called
