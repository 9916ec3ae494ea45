"""``ai-suite mcp stdio`` as a desktop assistant meets it: launched as a child process by
the official SDK's stdio client, bridged to the running platform (the e2e stack's mcp and
gateway), approvals decided with ``ai-suite approvals approve``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import anyio
import pytest
from ai_suite_pytest.stack import Stack
from mcp.shared.exceptions import MCPError

from services.core.version import package_version
from services.security.db import Database
from tests.support.keys import make_key
from tests.support.live import free_port
from tests.support.mcp_client import child_env, stdio_session

AI_SUITE = str(Path(sys.executable).parent / "ai-suite")
STDIO = ["mcp", "stdio"]


@pytest.fixture(scope="module")
def keys(stack: Stack) -> dict[str, str]:
    """Keys of new users (unique per run: the stack is shared with other tests)."""
    suffix = uuid.uuid4().hex[:8]
    db_path = stack.data_dir / "security.db"
    keys = {
        role: make_key(db_path, f"stdio-{role}-{suffix}", role)
        for role in ("viewer", "developer", "admin")
    }
    return {**keys, "suffix": suffix}


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[TextIO]:
    """The child's stderr, as an assistant keeps it in its MCP log."""
    with (tmp_path / "bridge-stderr.log").open("w+") as log:
        yield log


def bridge_env(stack: Stack, key: str, tmp_path: Path) -> dict[str, str]:
    # A data directory that does not exist: the bridge must not open a security database.
    return child_env(
        AI_SUITE_API_KEY=key, MCP_URL=stack.url("mcp"), AI_SUITE_DATA_DIR=str(tmp_path / "none")
    )


def run_bridge(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AI_SUITE, *STDIO],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_desktop_assistant_flow_over_stdio(
    stack: Stack, keys: dict[str, str], tmp_path: Path, errlog: TextIO
) -> None:
    # Only through the tools: with the compose backend the workspace is a container volume.
    path = f"stdio-{uuid.uuid4().hex[:8]}.txt"

    env = bridge_env(stack, keys["viewer"], tmp_path)
    async with stdio_session(AI_SUITE, STDIO, env, errlog) as (session, _):
        viewer_tools = {tool.name for tool in (await session.list_tools()).tools}

    env = bridge_env(stack, keys["developer"], tmp_path)
    async with stdio_session(AI_SUITE, STDIO, env, errlog) as (session, initialized):
        assert initialized.server_info.name == "local-ai-suite"
        assert initialized.server_info.version == package_version()
        assert initialized.capabilities.tools is not None
        assert initialized.capabilities.prompts is None
        assert initialized.capabilities.resources is None
        assert "approval_id" in (initialized.instructions or "")

        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert viewer_tools < set(tools)
        assert "write_file" in tools
        assert "write_file" not in viewer_tools
        assert "run_command" not in tools  # CRITICAL: admins only
        assert "approval_id" in tools["write_file"].input_schema["properties"]

        arguments = {"path": path, "content": "approved over stdio"}
        pending = await session.call_tool("write_file", arguments)
        assert pending.is_error is True
        assert pending.structured_content["approval_required"] is True
        approval_id = pending.structured_content["approval_id"]
        assert approval_id in pending.content[0].text

        missing = await session.call_tool("read_file", {"path": path})
        assert missing.is_error is True  # not written before the approval
        assert missing.structured_content["code"] == "path_not_found"

        approved = await anyio.run_process(
            [AI_SUITE, "approvals", "approve", approval_id, "--gateway-url", stack.url("gateway")],
            env=child_env(AI_SUITE_API_KEY=keys["admin"]),
            check=False,
        )
        assert approved.returncode == 0, approved.stderr.decode()

        ran = await session.call_tool("write_file", {**arguments, "approval_id": approval_id})
        assert ran.is_error is False, ran.content

        read = await session.call_tool("read_file", {"path": path})
        assert read.is_error is False, read.content
        assert read.structured_content["result"]["content"] == "approved over stdio"
        assert json.loads(read.content[0].text) == read.structured_content

        replay = await session.call_tool("write_file", {**arguments, "approval_id": approval_id})
        assert replay.is_error is True
        assert replay.structured_content["code"] == "approval_already_used"

    errlog.seek(0)
    assert "bridging stdio to" in errlog.read()
    # The HTTP server's pipeline wrote the audit rows, under the key's user.
    db = Database(stack.data_dir / "security.db")
    try:
        rows = db.query(
            "SELECT action, outcome FROM audit_log WHERE user_name = ? AND action LIKE 'tool:%'"
            " ORDER BY id",
            (f"stdio-developer-{keys['suffix']}",),
        )
    finally:
        db.close()
    assert [tuple(row) for row in rows] == [
        ("tool:write_file", "pending"),
        ("tool:read_file", "started"),
        ("tool:read_file", "error"),
        ("tool:write_file", "started"),
        ("tool:write_file", "ok"),
        ("tool:read_file", "started"),
        ("tool:read_file", "ok"),
        ("tool:write_file", "denied"),
    ]
    assert not (tmp_path / "none").exists()


async def test_a_wrong_key_fails_at_start_with_the_reason_on_stderr(
    stack: Stack, tmp_path: Path, errlog: TextIO
) -> None:
    result = run_bridge(bridge_env(stack, "ais_" + "x" * 43, tmp_path))
    assert result.returncode != 0
    assert result.stdout == ""  # stdout is the protocol's
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "refused the API key" in lines[0]
    assert "AI_SUITE_API_KEY" in lines[0]

    # The official client sees the process end; the message is in the assistant's log.
    closed = pytest.RaisesExc(MCPError, match="Connection closed")
    with pytest.RaisesGroup(closed, flatten_subgroups=True):
        async with stdio_session(
            AI_SUITE, STDIO, bridge_env(stack, "ais_" + "x" * 43, tmp_path), errlog
        ):
            pass
    errlog.seek(0)
    assert "refused the API key" in errlog.read()


def test_a_missing_key_fails_with_how_to_create_one(stack: Stack, tmp_path: Path) -> None:
    env = child_env(MCP_URL=stack.url("mcp"))
    result = run_bridge(env)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "AI_SUITE_API_KEY is not set" in result.stderr
    assert "ai-suite keys create" in result.stderr


def test_a_server_that_is_not_running_says_start_the_platform(
    keys: dict[str, str], tmp_path: Path
) -> None:
    nothing = f"http://127.0.0.1:{free_port()}"
    result = run_bridge(child_env(AI_SUITE_API_KEY=keys["developer"], MCP_URL=nothing))
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"the MCP server at {nothing}/mcp is not running" in result.stderr
    assert "ai-suite up" in result.stderr
