"""The MCP server as a new user meets it: `ai-suite up`, the official MCP client,
the gateway's /v1 tool and approval routes, and `ai-suite approvals approve`."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Platform
from tests.support.mcp_client import mcp_session


def create_key(platform: Platform, user: str, role: str) -> str:
    created = platform.cli("keys", "create", "--user", user, "--role", role)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


async def test_done_when_scenario(shared_platform: Platform) -> None:
    platform = shared_platform
    dev = create_key(platform, "dev", "developer")
    viewer = create_key(platform, "viewer", "viewer")
    workspace = platform.cwd / "data" / "workspace"
    (workspace / "hello.txt").write_text("hello, MCP")
    gateway = platform.gateway_url

    # The gateway serves the same tools under /v1 with one key and one URL.
    rest = httpx.AsyncClient(base_url=gateway)
    dev_tools = await rest.get("/v1/tools", headers={"Authorization": f"Bearer {dev}"})
    viewer_tools = await rest.get("/v1/tools", headers={"Authorization": f"Bearer {viewer}"})
    assert dev_tools.status_code == viewer_tools.status_code == 200
    assert len(viewer_tools.json()["data"]) < len(dev_tools.json()["data"])

    arguments = {"path": "written.txt", "content": "approved content"}
    async with mcp_session(platform.urls["mcp"], dev) as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert {"read_file", "write_file"} <= names
        assert "run_command" not in names

        read = await session.call_tool("read_file", {"path": "hello.txt"})
        assert read.is_error is False
        assert "hello, MCP" in read.content[0].text

        pending = await session.call_tool("write_file", arguments)
        assert pending.is_error is True
        approval_id = pending.structured_content["approval_id"]

        listed = platform.cli("approvals", "list", "--key", platform.admin_key)
        assert listed.returncode == 0, listed.stderr
        assert approval_id in listed.stdout
        approved = platform.cli("approvals", "approve", approval_id, "--key", platform.admin_key)
        assert approved.returncode == 0, approved.stderr

        ran = await session.call_tool("write_file", {**arguments, "approval_id": approval_id})
        assert ran.is_error is False, ran.content[0].text
        assert (workspace / "written.txt").read_text() == "approved content"

        again = await session.call_tool("write_file", {**arguments, "approval_id": approval_id})
        assert again.is_error is True
        assert again.structured_content["code"] == "approval_already_used"

    # The same approval, seen through the gateway, is executed and cannot be reused.
    state = await rest.get(
        f"/v1/approvals/{approval_id}",
        headers={"Authorization": f"Bearer {platform.admin_key}"},
    )
    assert state.json()["status"] == "executed"
    replay = await rest.post(
        "/v1/tools/write_file/call",
        headers={"Authorization": f"Bearer {dev}"},
        json={"arguments": arguments, "approval_id": approval_id},
    )
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "approval_already_used"
    await rest.aclose()
