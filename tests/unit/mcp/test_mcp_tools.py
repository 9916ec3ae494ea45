"""Each tool, called directly with a real workspace (git and programs really run)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
import respx

from services.mcp.tools import build_tools
from services.mcp.tools.base import ToolError
from services.mcp.tools.command import RunCommandArgs, resolve_executable
from services.mcp.tools.files import ReadFileArgs, SearchFilesArgs, WriteFileArgs
from services.mcp.tools.git import GitAddArgs, GitDiffArgs
from tests.support.box import needs_box

TOOLS = build_tools()


async def run(ctx, tool: str, **arguments):
    spec = TOOLS[tool]
    return await spec.run(ctx, spec.args.model_validate(arguments))


# --- files ------------------------------------------------------------------


async def test_list_read_write_search(tool_ctx, workspace_dir: Path) -> None:
    ctx = tool_ctx()
    (workspace_dir / "src").mkdir()
    (workspace_dir / "src" / "main.py").write_text("def main():\n    return 'needle'\n")
    (workspace_dir / "bin.dat").write_bytes(b"\x00\x01needle")
    listing = await run(ctx, "list_files", path=".")
    assert [(e["name"], e["type"]) for e in listing["entries"]] == [
        ("bin.dat", "file"),
        ("src", "directory"),
    ]
    read = await run(ctx, "read_file", path="src/main.py")
    assert read["content"].startswith("def main")
    assert read["truncated"] is False
    written = await run(ctx, "write_file", path="notes/todo.md", content="# todo", create_dirs=True)
    assert written == {"path": "notes/todo.md", "bytes_written": 6, "created": True}
    found = await run(ctx, "search_files", query="NEEDLE", case_sensitive=False)
    assert [(m["path"], m["line"]) for m in found["matches"]] == [("src/main.py", 2)]
    assert found["files_skipped"] == 1  # the binary file


async def test_read_file_truncates_explicitly_and_encodes_binary(tool_ctx, workspace_dir) -> None:
    ctx = tool_ctx(max_read_bytes=4)
    (workspace_dir / "long.txt").write_text("abcdefgh")
    result = await run(ctx, "read_file", path="long.txt")
    assert result["content"] == "abcd"
    assert result["truncated"] is True
    assert result["size"] == 8
    assert "only the first 4" in result["note"]
    (workspace_dir / "img.bin").write_bytes(b"\xff\xfe\x00")
    binary = await run(tool_ctx(), "read_file", path="img.bin")
    assert binary["encoding"] == "base64"


async def test_read_cut_inside_a_multibyte_character_stays_text(tool_ctx, workspace_dir) -> None:
    (workspace_dir / "ko.txt").write_text("가나다")
    result = await run(tool_ctx(max_read_bytes=4), "read_file", path="ko.txt")
    assert (result["content"], result["encoding"]) == ("가", "utf-8")


async def test_write_limit_and_git_internals(tool_ctx, workspace_dir) -> None:
    ctx = tool_ctx(max_write_bytes=3)
    with pytest.raises(ToolError) as info:
        await run(ctx, "write_file", path="a.txt", content="four")
    assert (info.value.status, info.value.code) == (413, "content_too_large")
    (workspace_dir / ".git").mkdir()
    with pytest.raises(ToolError) as info:
        await run(tool_ctx(), "write_file", path=".GIT/hooks/pre-commit", content="x")
    assert info.value.code == "git_internals"


async def test_sandbox_errors_become_tool_errors(tool_ctx) -> None:
    ctx = tool_ctx()
    for tool, args in [
        ("read_file", {"path": "../etc/passwd"}),
        ("list_files", {"path": "/etc"}),
        ("write_file", {"path": "../x", "content": "x"}),
        ("search_files", {"query": "x", "path": ".."}),
    ]:
        with pytest.raises(ToolError) as info:
            await run(ctx, tool, **args)
        assert info.value.status == 403


async def test_search_limits_results(tool_ctx, workspace_dir) -> None:
    (workspace_dir / "many.txt").write_text("hit\n" * 10)
    result = await run(tool_ctx(), "search_files", query="hit", max_results=3)
    assert len(result["matches"]) == 3
    assert result["truncated"] is True


def test_argument_models_reject_unknown_and_bad_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        ReadFileArgs.model_validate({"path": "a", "mode": "w"})
    with pytest.raises(ValueError, match="at least 1"):
        SearchFilesArgs.model_validate({"query": ""})
    with pytest.raises(ValueError, match="NUL"):
        RunCommandArgs.model_validate({"argv": ["echo", "a\x00b"]})
    with pytest.raises(ValueError, match="relative"):
        GitAddArgs.model_validate({"paths": ["/etc/passwd"]})
    with pytest.raises(ValueError, match="not allowed"):
        GitDiffArgs.model_validate({"paths": ["../x"]})
    assert WriteFileArgs.model_validate({"path": "a", "content": ""}).create_dirs is False


# --- run_command --------------------------------------------------------------


@needs_box
async def test_shell_metacharacters_are_plain_arguments(tool_ctx, workspace_dir) -> None:
    ctx = tool_ctx()
    payload = "hi; touch pwned && echo $HOME | cat > leak `id`"
    result = await run(ctx, "run_command", argv=["echo", payload])
    assert result["stdout"] == payload + "\n"
    assert result["exit_code"] == 0
    assert not (workspace_dir / "pwned").exists()
    assert not (workspace_dir / "leak").exists()


@pytest.mark.parametrize(
    "argv0", ["ls; rm -rf /", "sh", "bash", "/bin/sh", "rm", "/tmp/ls", "ls\n", "env"]
)
async def test_only_allowlisted_programs_run(tool_ctx, argv0: str) -> None:
    with pytest.raises(ToolError) as info:
        await run(tool_ctx(), "run_command", argv=[argv0, "-c", "id"])
    assert (info.value.status, info.value.code) == (403, "command_not_allowed")


def test_allowlisted_program_resolves_on_clean_path_only() -> None:
    path = resolve_executable("ls", frozenset({"ls"}))
    assert os.path.isabs(path)
    assert resolve_executable(path, frozenset({"ls"})) == path
    with pytest.raises(ToolError, match="not installed"):
        resolve_executable("no-such-program-xyz", frozenset({"no-such-program-xyz"}))


@needs_box
async def test_environment_is_scrubbed(tool_ctx, workspace_dir, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-leak")
    monkeypatch.setenv("AI_SUITE_TOKEN", "ais_leak")
    code = "import os,json; print(json.dumps(dict(os.environ)))"
    result = await run(tool_ctx(), "run_command", argv=["python3", "-c", code])
    env = json.loads(result["stdout"])
    assert set(env) <= {"PATH", "HOME", "LANG", "LC_CTYPE", "PWD"}
    assert env["HOME"] == str(workspace_dir.resolve())


@needs_box
async def test_cwd_is_inside_the_workspace(tool_ctx, workspace_dir) -> None:
    (workspace_dir / "sub").mkdir()
    result = await run(
        tool_ctx(),
        "run_command",
        argv=["python3", "-c", "import os; print(os.getcwd())"],
        cwd="sub",
    )
    assert result["stdout"].strip() == str((workspace_dir / "sub").resolve())
    with pytest.raises(ToolError):
        await run(tool_ctx(), "run_command", argv=["ls"], cwd="../..")


@needs_box
async def test_output_is_truncated_with_a_marker(tool_ctx) -> None:
    ctx = tool_ctx(max_output_bytes=10)
    result = await run(ctx, "run_command", argv=["python3", "-c", "print('x' * 100)"])
    assert result["stdout"] == "x" * 10
    assert result["stdout_bytes"] == 101
    assert result["truncated"] is True
    assert result["stdout_truncated"] is True


@needs_box
async def test_timeout_is_a_504_naming_the_limit_with_the_output_so_far(
    tool_ctx, workspace_dir: Path
) -> None:
    # Killing everything the command spawned: tests/integration/mcp/test_mcp_process_group.py.
    (workspace_dir / "build.log").write_text("step 1 done\n")
    ctx = tool_ctx(command_timeout=0.3)
    with pytest.raises(ToolError) as info:  # `tail -f` prints the file, then waits forever
        await run(ctx, "run_command", argv=["tail", "-f", "build.log"])
    assert (info.value.status, info.value.code) == (504, "command_timeout")
    assert "0.3s" in str(info.value)
    partial = info.value.extra["partial_output"]
    assert partial["stdout"] == "step 1 done\n"
    assert (partial["stdout_bytes"], partial["truncated"]) == (12, False)
    assert "exit_code" not in partial


@needs_box
async def test_nonzero_exit_is_a_result_not_an_error(tool_ctx) -> None:
    result = await run(tool_ctx(), "run_command", argv=["ls", "definitely-missing"])
    assert result["exit_code"] != 0
    assert "definitely-missing" in result["stderr"]


# --- git ------------------------------------------------------------------------


@pytest.fixture
def repo(workspace_dir: Path) -> Path:
    path = workspace_dir / "proj"
    path.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README.md").write_text("hello\n")
    return path


async def test_git_round_trip(tool_ctx, repo: Path) -> None:
    ctx = tool_ctx()
    status = await run(ctx, "git_status", repo="proj")
    assert status["changes"] == [{"status": "??", "path": "README.md"}]
    assert status["branch"].startswith("No commits yet on main")
    await run(ctx, "git_add", repo="proj", paths=["README.md"])
    staged = await run(ctx, "git_diff", repo="proj", staged=True)
    assert "+hello" in staged["output"]
    committed = await run(ctx, "git_commit", repo="proj", message="first; rm -rf / #")
    assert len(committed["commit"]) == 40
    log = await run(ctx, "git_log", repo="proj")
    assert log["commits"][0]["subject"] == "first; rm -rf / #"
    assert log["commits"][0]["author"] == "alice"
    (repo / "README.md").write_text("hello\nworld\n")
    diff = await run(ctx, "git_diff", repo="proj")
    assert "+world" in diff["output"]
    assert (await run(ctx, "git_status", repo="proj"))["clean"] is False


async def test_git_hooks_never_run(tool_ctx, repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text('#!/bin/sh\ntouch "$GIT_DIR/../hook-ran"\n')
    hook.chmod(0o755)
    ctx = tool_ctx()
    await run(ctx, "git_add", repo="proj", paths=["README.md"])
    await run(ctx, "git_commit", repo="proj", message="m")
    assert not (repo / "hook-ran").exists()


async def test_git_pathspec_magic_is_literal(tool_ctx, repo: Path) -> None:
    with pytest.raises(ToolError, match="did not match"):
        await run(tool_ctx(), "git_add", repo="proj", paths=[":(glob)**"])


async def test_git_outside_a_repository(tool_ctx, workspace_dir) -> None:
    with pytest.raises(ToolError) as info:
        await run(tool_ctx(), "git_status", repo=".")
    assert info.value.code == "not_a_git_repository"
    with pytest.raises(ToolError) as info:
        await run(tool_ctx(), "git_log", repo="../..")
    assert info.value.status == 403


async def test_git_failure_reports_stderr(tool_ctx, repo: Path) -> None:
    with pytest.raises(ToolError) as info:
        await run(tool_ctx(), "git_log", repo="proj")  # no commits yet
    assert info.value.code == "git_failed"
    assert "does not have any commits" in info.value.message


# --- rag_search and system_info -------------------------------------------------


@respx.mock
async def test_rag_search_forwards_the_key_and_returns_chunks(tool_ctx) -> None:
    ctx = tool_ctx(rag_url="http://rag.test")
    route = respx.post("http://rag.test/query").mock(
        return_value=httpx.Response(
            200,
            json={
                "results": [
                    {
                        "text": "chunk",
                        "score": 0.9,
                        "document_id": "d1",
                        "chunk_index": 0,
                        "source": "a.md",
                        "metadata": {},
                    }
                ],
                "cached": False,
            },
        )
    )
    result = await run(ctx, "rag_search", query="what", collection="docs", top_k=3)
    assert result["results"][0]["text"] == "chunk"
    assert result["sources"] == ["a.md"]
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer ais_test"
    assert request.read() == b'{"collection":"docs","query":"what","top_k":3}'


@respx.mock
@pytest.mark.parametrize(
    ("response", "status", "code"),
    [
        (httpx.ConnectError("refused"), 503, "rag_unavailable"),
        (httpx.Response(404, json={"error": {"message": "no collection"}}), 404, "rag_refused"),
        (httpx.Response(500, text="boom"), 502, "rag_error"),
        (httpx.Response(200, json={"answer": "x"}), 502, "rag_error"),
    ],
)
async def test_rag_search_errors_are_clear(tool_ctx, response, status: int, code: str) -> None:
    route = respx.post("http://rag.test/query")
    if isinstance(response, Exception):
        route.mock(side_effect=response)
    else:
        route.mock(return_value=response)
    with pytest.raises(ToolError) as info:
        await run(tool_ctx(rag_url="http://rag.test"), "rag_search", query="q")
    assert (info.value.status, info.value.code) == (status, code)


async def test_system_info(tool_ctx, workspace_dir) -> None:
    info = await run(tool_ctx(), "system_info")
    assert info["workspace_roots"] == [str(workspace_dir.resolve())]
    assert info["versions"]["mcp"]
    assert "ls" in info["command_allowlist"]
    assert info["services"]["rag"].startswith("http://127.0.0.1:")
