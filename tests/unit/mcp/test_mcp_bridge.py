"""The stdio bridge's pieces, in-process: its MCP server (through the SDK's in-memory
client) forwarding to the real MCP app (through ``httpx2.ASGITransport``), the error
classification, and the CLI's key and URL handling. The child-process version of all
this is tests/e2e/test_mcp_stdio_e2e.py."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner
from mcp import Client
from mcp.shared.exceptions import MCPError

from services.cli.main import cli, main
from services.cli.mcp import default_url, read_key
from services.core.version import package_version
from services.mcp.bridge import BridgeError, Upstream, build_server, mcp_endpoint
from tests.unit.mcp.conftest import Env

# Inside the app the SDK checks the Host header against loopback names.
APP_URL = "http://127.0.0.1:8020"


@asynccontextmanager
async def running(env: Env) -> AsyncIterator[None]:
    """The app's lifespan: the SDK's session manager runs inside it."""
    async with env.app.router.lifespan_context(env.app):
        yield


def upstream(env: Env, key: str) -> Upstream:
    return Upstream(APP_URL, key, transport=httpx2.ASGITransport(app=env.app))


@asynccontextmanager
async def bridged(env: Env, key: str) -> AsyncIterator[Client]:
    async with running(env), Client(build_server(upstream(env, key))) as client:
        yield client


@pytest.mark.parametrize(
    ("given", "endpoint"),
    [
        ("http://127.0.0.1:8020", "http://127.0.0.1:8020/mcp"),
        ("http://127.0.0.1:8020/", "http://127.0.0.1:8020/mcp"),
        ("http://127.0.0.1:8020/mcp", "http://127.0.0.1:8020/mcp"),
        (" https://tools.example/base/mcp/ ", "https://tools.example/base/mcp"),
    ],
)
def test_the_endpoint_is_the_base_url_plus_mcp(given: str, endpoint: str) -> None:
    assert mcp_endpoint(given) == endpoint


async def test_server_info_and_capabilities_of_the_bridge(env: Env) -> None:
    async with bridged(env, env.key("viewer", "viewer")) as client:
        assert client.server_info is not None
        assert client.server_info.name == "local-ai-suite"
        assert client.server_info.version == package_version() != ""
        capabilities = client.server_capabilities
        assert capabilities.tools is not None
        assert capabilities.prompts is None
        assert capabilities.resources is None
        assert capabilities.logging is None
        assert capabilities.completions is None


async def test_the_http_server_advertises_its_version_and_only_tools(env: Env) -> None:
    # The upstream session of the bridge is a plain streamable HTTP client session.
    async with (
        running(env),
        upstream(env, env.key("viewer", "viewer")).session() as (session, init),
    ):
        assert init.server_info.version == package_version()
        assert init.capabilities.tools is not None
        assert init.capabilities.prompts is None
        assert init.capabilities.resources is None
        with pytest.raises(MCPError) as refused:
            await session.list_prompts()
        assert refused.value.code == -32601  # method not found


async def test_the_tool_list_is_the_callers(env: Env) -> None:
    async with running(env):
        async with Client(build_server(upstream(env, env.key("viewer", "viewer")))) as client:
            viewer = {tool.name for tool in (await client.list_tools()).tools}
        async with Client(build_server(upstream(env, env.key("dev", "developer")))) as client:
            developer = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert viewer < set(developer)
    assert "write_file" not in viewer
    assert "approval_id" in developer["write_file"].input_schema["properties"]


async def test_results_are_forwarded_as_the_server_sent_them(env: Env) -> None:
    (env.workspace / "hello.txt").write_text("hello through the bridge")
    arguments = {"path": "bridged.txt", "content": "approved"}
    async with bridged(env, env.key("dev", "developer")) as client:
        read = await client.call_tool("read_file", {"path": "hello.txt"})
        assert read.is_error is False
        assert read.structured_content["result"]["content"] == "hello through the bridge"
        assert json.loads(read.content[0].text) == read.structured_content

        pending = await client.call_tool("write_file", arguments)
        assert pending.is_error is True
        assert pending.structured_content["approval_required"] is True
        approval_id = pending.structured_content["approval_id"]
        assert not (env.workspace / "bridged.txt").exists()

        approved = await env.client.post(
            f"/approvals/{approval_id}/approve", headers=env.headers("boss", "admin"), json={}
        )
        assert approved.status_code == 200, approved.text

        ran = await client.call_tool("write_file", {**arguments, "approval_id": approval_id})
        assert ran.is_error is False, ran.content[0].text
        assert (env.workspace / "bridged.txt").read_text() == "approved"

        replay = await client.call_tool("write_file", {**arguments, "approval_id": approval_id})
        assert replay.is_error is True
        assert replay.structured_content["code"] == "approval_already_used"

        denied = await client.call_tool("run_command", {"argv": ["ls"]})
        assert denied.structured_content["code"] == "permission_denied"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("read_file", {"path": "missing.txt"}),  # the tool's own refusal
        ("read_file", {"path": "a.txt", "unknown": 1}),  # the pipeline's validation
        ("read_file", {"path": "../outside"}),  # the sandbox
        ("run_command", {"argv": ["ls"]}),  # the role
        ("no_such_tool", {}),  # the SDK's answer to an unknown tool
    ],
)
async def test_the_bridged_answer_is_the_http_answer(
    env: Env, tool: str, arguments: dict[str, object]
) -> None:
    key = env.key("dev", "developer")

    async def outcome(call: Callable[[], Awaitable[object]]) -> object:
        try:
            result = await call()
        except MCPError as exc:
            return ("error", exc.code, exc.message)
        # _meta is each server's own (the SDK stamps its serverInfo in newer protocol eras).
        return result.model_dump(exclude={"meta"})  # type: ignore[attr-defined]

    async with running(env):
        async with upstream(env, key).session() as (session, _):
            direct = await outcome(lambda: session.call_tool(tool, arguments))
        async with Client(build_server(upstream(env, key))) as client:
            bridged = await outcome(lambda: client.call_tool(tool, arguments))
    assert bridged == direct
    # Every case is a refusal of one kind or another, never a silent success.
    assert isinstance(direct, tuple) or direct["is_error"] is True  # type: ignore[index]


async def test_a_refused_key_is_a_bridge_error_that_says_what_to_do(env: Env) -> None:
    async with running(env):
        with pytest.raises(BridgeError, match="refused the API key") as refused:
            await upstream(env, "ais_" + "x" * 43).check()
    assert "AI_SUITE_API_KEY" in str(refused.value)
    assert "ai-suite keys create" in str(refused.value)


async def test_a_wrong_url_names_the_status() -> None:
    async def not_mcp(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(404, json={"error": {"message": "no such route"}})

    lost = Upstream("http://127.0.0.1:8000", "ais_k", transport=httpx2.MockTransport(not_mcp))
    with pytest.raises(BridgeError, match="answered HTTP 404 \\(no such route\\)"):
        await lost.check()


def refusing_transport() -> httpx2.MockTransport:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    return httpx2.MockTransport(refuse)


async def test_an_unreachable_server_says_start_the_platform() -> None:
    down = Upstream("http://127.0.0.1:9", "ais_k", transport=refusing_transport())
    with pytest.raises(BridgeError, match="is not running") as failed:
        await down.check()
    assert "ai-suite up" in str(failed.value)
    assert "http://127.0.0.1:9/mcp" in str(failed.value)


async def test_a_server_gone_mid_session_is_an_error_result_not_a_crash() -> None:
    down = Upstream("http://127.0.0.1:9", "ais_k", transport=refusing_transport())
    async with Client(build_server(down)) as client:
        result = await client.call_tool("read_file", {"path": "x"})
        assert result.is_error is True
        assert "is not running" in result.content[0].text
        with pytest.raises(MCPError, match="is not running"):
            await client.list_tools()


# --- the CLI's key and URL -----------------------------------------------------


def test_missing_key_says_how_to_create_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_SUITE_API_KEY", raising=False)
    result = CliRunner().invoke(cli, ["mcp", "stdio"], env={"AI_SUITE_API_KEY": ""})
    assert result.exit_code == 1
    assert "AI_SUITE_API_KEY is not set" in result.output
    assert "ai-suite keys create" in result.output


def test_the_key_comes_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_SUITE_API_KEY", " ais_from_env \n")
    assert read_key(None) == "ais_from_env"
    key_file = tmp_path / "key"
    key_file.write_text("ais_from_file\n")
    assert read_key(key_file) == "ais_from_file"


@pytest.mark.parametrize(
    ("content", "message"), [(None, "cannot read the key file"), ("\n", "is empty")]
)
def test_a_bad_key_file_is_refused(tmp_path: Path, content: str | None, message: str) -> None:
    key_file = tmp_path / "key"
    if content is not None:
        key_file.write_text(content)
    result = CliRunner().invoke(cli, ["mcp", "stdio", "--key-file", str(key_file)])
    assert result.exit_code == 1
    assert message in result.output


def test_there_is_no_key_option() -> None:
    # A key on the command line would show in `ps`.
    result = CliRunner().invoke(cli, ["mcp", "stdio", "--key", "ais_k"])
    assert result.exit_code == 2
    assert "No such option" in result.output


@pytest.mark.parametrize(
    ("environment", "url"),
    [
        ({}, "http://127.0.0.1:8020"),
        ({"MCP_PORT": "9111"}, "http://127.0.0.1:9111"),
        ({"MCP_PORT": "9111", "MCP_URL": "http://10.0.0.5:8020"}, "http://10.0.0.5:8020"),
    ],
)
def test_default_url(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], url: str
) -> None:
    for name in ("MCP_URL", "MCP_PORT", "AI_SUITE_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert default_url() == url


def test_a_bad_setting_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AI_SUITE_API_KEY", "ais_k")
    monkeypatch.setenv("MCP_PORT", "70000")
    monkeypatch.setattr(sys, "argv", ["ai-suite", "mcp", "stdio"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "ai-suite: MCP_PORT='70000' is not valid: expected an integer (0-65535)\n"
    )
