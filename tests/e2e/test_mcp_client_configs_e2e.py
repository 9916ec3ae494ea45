"""The assistant configurations in docs/mcp.md work as printed: each JSON snippet is
parsed, its placeholders replaced by the e2e stack's values, and then used as the
assistant would use it — stdio snippets launch their command with the official stdio
client, HTTP snippets connect with the streamable HTTP client and their headers."""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

import httpx2
import pytest
from ai_suite_pytest.stack import Stack
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from services.core.version import package_version
from tests.support.keys import make_key
from tests.support.mcp_client import child_env, stdio_session

ROOT = Path(__file__).resolve().parents[2]
AI_SUITE = str(Path(sys.executable).parent / "ai-suite")
SNIPPET = re.compile(r"<!-- client-config: ([\w-]+) -->\n```json\n(.*?)\n```", re.S)
EXPECTED = {"claude-desktop", "cursor-stdio", "cursor-http", "vscode-stdio", "vscode-http", "cline"}
# Placeholders as printed in docs/mcp.md.
COMMAND = "/ABSOLUTE/PATH/TO/local-ai-suite/.venv/bin/ai-suite"
KEYS = ("ais_YOUR_KEY", "${input:ai-suite-key}")
DEFAULT_URL = "http://127.0.0.1:8020"


def snippets() -> dict[str, str]:
    found = SNIPPET.findall((ROOT / "docs/mcp.md").read_text())
    names = [name for name, _ in found]
    assert len(names) == len(set(names)), names
    return dict(found)


def test_every_assistant_has_a_snippet() -> None:
    assert set(snippets()) == EXPECTED


def substitute(value: Any, stack: Stack, key: str) -> Any:
    if isinstance(value, dict):
        return {name: substitute(item, stack, key) for name, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, stack, key) for item in value]
    if isinstance(value, str):
        value = value.replace(COMMAND, AI_SUITE).replace(DEFAULT_URL, stack.url("mcp"))
        for placeholder in KEYS:
            value = value.replace(placeholder, key)
    return value


@pytest.fixture(scope="module")
def developer_key(stack: Stack) -> str:
    return make_key(stack.data_dir / "security.db", f"configs-{uuid.uuid4().hex[:8]}", "developer")


@pytest.fixture
def errlog(tmp_path: Path) -> Any:
    with (tmp_path / "assistant-mcp.log").open("w+") as log:
        yield log


async def list_over_stdio(entry: dict[str, Any], errlog: TextIO) -> set[str]:
    # The assistant's environment is the snippet's env on top of the SDK's default
    # inherited variables (PATH, HOME, ...); coverage's variables measure the child.
    env = child_env(**entry.get("env", {}))
    async with stdio_session(entry["command"], entry["args"], env, errlog) as (session, init):
        assert init.server_info.version == package_version()
        return {tool.name for tool in (await session.list_tools()).tools}


async def list_over_http(entry: dict[str, Any]) -> set[str]:
    async with (
        httpx2.AsyncClient(headers=entry["headers"]) as http,
        streamable_http_client(entry["url"], http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        assert init.server_info.version == package_version()
        return {tool.name for tool in (await session.list_tools()).tools}


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_snippet_lists_the_tools(
    name: str, stack: Stack, developer_key: str, errlog: TextIO
) -> None:
    printed = json.loads(snippets()[name])
    vscode = name.startswith("vscode")
    servers = printed["servers" if vscode else "mcpServers"]
    assert list(servers) == ["local-ai-suite"]
    entry = substitute(servers["local-ai-suite"], stack, developer_key)
    leftover = json.dumps(entry)
    for placeholder in ("ABSOLUTE", "YOUR_KEY", "${"):
        assert placeholder not in leftover

    if name.endswith("-http"):
        if vscode:
            assert entry["type"] == "http"
        assert entry["url"] == f"{stack.url('mcp')}/mcp"
        tools = await list_over_http(entry)
    else:
        if vscode:
            assert entry["type"] == "stdio"
        assert entry["args"] == ["mcp", "stdio"]
        assert set(entry["env"]) <= {"AI_SUITE_API_KEY", "MCP_URL"}
        tools = await list_over_stdio(entry, errlog)
    # A developer's list: the HIGH tools, not the CRITICAL one.
    assert {"read_file", "write_file", "git_commit"} <= tools
    assert "run_command" not in tools
