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
