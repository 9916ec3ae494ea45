"""Limits before work on the MCP server: REST and the SDK's /mcp (docs/security.md)."""

from __future__ import annotations

import json

from tests.support.raw_asgi import call, endless

DEEP = b'{"arguments": {"path": ' + b"[" * 1000 + b"]" * 1000 + b"}}"


async def test_deep_json_on_the_rest_api_is_400_not_500(env) -> None:
    response = await env.client.post(
        "/tools/list_files/call",
        content=DEEP,
        headers={**env.headers("dev", "developer"), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "json_too_deep"


async def test_deep_json_on_mcp_is_400(env) -> None:
    message = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": '
    message += b"[" * 1000 + b"]" * 1000 + b"}"
    async with env.app.router.lifespan_context(env.app):
        response = await env.client.post(
            "/mcp",
            content=message,
            headers={
                **env.headers("dev", "developer"),
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
            },
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "json_too_deep"


async def test_a_write_file_of_the_largest_allowed_content_fits_the_body_limit(env) -> None:
    # MCP_MAX_WRITE_BYTES (1 MiB) of content that JSON escapes to six bytes per character
    # is still far under AI_SUITE_MAX_BODY_BYTES (16 MiB).
    content = "\u0001" * env.settings.max_write_bytes
    body = json.dumps({"arguments": {"path": "big.txt", "content": content}}).encode()
    assert len(body) < env.settings.max_body_bytes


async def test_an_oversized_body_is_413_on_mcp_without_reading_it(env) -> None:
    limit = env.settings.max_body_bytes
    for path in ("/mcp", "/tools/write_file/call"):
        result = await call(
            env.app,
            "POST",
            path,
            endless(b" " * 65536),
            headers={"content-length": str(limit + 1), **env.headers("dev", "developer")},
        )
        assert result.status == 413, path
        assert result.receives == 0
