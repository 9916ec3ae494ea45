"""The real Model Context Protocol, spoken by the official ``mcp`` client over a socket."""

from __future__ import annotations

import json

import httpx
import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.mcp_client import mcp_session


async def test_developer_flow_with_approval(start_mcp) -> None:
    server = start_mcp()
    dev, viewer, admin = (
        server.key("dev", "developer"),
        server.key("viewer", "viewer"),
        server.key("boss", "admin"),
    )
    (server.workspace / "hello.txt").write_text("hello from the workspace")

    async with mcp_session(server.url, viewer) as session:
        viewer_tools = {t.name for t in (await session.list_tools()).tools}

    async with mcp_session(server.url, dev) as session, httpx.AsyncClient() as rest:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert viewer_tools < set(tools)
        assert "write_file" in tools
        assert "write_file" not in viewer_tools
        assert "approval_id" in tools["write_file"].input_schema["properties"]

        read = await session.call_tool("read_file", {"path": "hello.txt"})
        assert read.is_error is False
        payload = json.loads(read.content[0].text)
        assert payload["result"]["content"] == "hello from the workspace"

        arguments = {"path": "made-by-mcp.txt", "content": "written via MCP"}
        pending = await session.call_tool("write_file", arguments)
        assert pending.is_error is True
        approval_id = pending.structured_content["approval_id"]
        assert pending.structured_content["status"] == "pending"
        assert approval_id in pending.content[0].text
        assert not (server.workspace / "made-by-mcp.txt").exists()

        approved = await rest.post(
            f"{server.url}/approvals/{approval_id}/approve",
            headers={"Authorization": f"Bearer {admin}"},
            json={"reason": "looks fine"},
        )
        assert approved.status_code == 200, approved.text

        ran = await session.call_tool("write_file", {**arguments, "approval_id": approval_id})
        assert ran.is_error is False, ran.content[0].text
        assert (server.workspace / "made-by-mcp.txt").read_text() == "written via MCP"

        again = await session.call_tool("write_file", {**arguments, "approval_id": approval_id})
        assert again.is_error is True
        assert again.structured_content["code"] == "approval_already_used"

        denied = await session.call_tool("run_command", {"argv": ["ls"]})
        assert denied.is_error is True
        assert denied.structured_content["code"] == "permission_denied"

    # pending, started + ok (the run), denied (the replay)
    assert server.audit_count("action = 'tool:write_file'") == 4
    assert server.audit_count("action LIKE 'approval:%'") == 3


async def test_mcp_without_a_valid_key_is_refused(start_mcp) -> None:
    server = start_mcp()

    async def connect() -> None:
        async with mcp_session(server.url, "ais_" + "x" * 43):
            pass

    with pytest.raises((MCPError, ExceptionGroup, httpx2.HTTPStatusError)):
        await connect()
    async with httpx.AsyncClient() as client:
        plain = await client.post(
            f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
        )
    assert plain.status_code == 401


async def test_key_revoked_mid_session_stops_tool_calls(start_mcp) -> None:
    from services.security.db import Database
    from services.security.keys import KeyStore

    server = start_mcp()
    key = server.key("dev", "developer")
    async with mcp_session(server.url, key) as session:
        assert (await session.call_tool("system_info", {})).is_error is False
        db = Database(server.data_dir / "security.db")
        KeyStore(db).revoke(key[:12])
        db.close()
        with pytest.raises(Exception):  # noqa: B017 - the SDK surfaces the 401 its own way
            await session.call_tool("system_info", {}, read_timeout_seconds=5)
