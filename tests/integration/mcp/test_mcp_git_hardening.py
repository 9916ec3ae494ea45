"""No repository content makes a git tool run a program (issue 11).

Each test builds a repository whose configuration, attributes or hooks would run
``touch <marker>``, proves with plain git that the vector is live where git can be made
to trigger it (the "control"), then calls the real tool and asserts the marker never
appears and the tool's output is still right. git really runs (hence integration).
"""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.http import default_ssl_context
from services.mcp.process import CLEAN_PATH
from services.mcp.sandbox import Workspace
from services.mcp.settings import McpSettings
from services.mcp.tools import build_tools, git
from services.mcp.tools.base import ToolContext, ToolError
from services.security.rbac import Principal

TOOLS = build_tools()
READ_TOOLS = ("git_status", "git_diff", "git_log")


async def run(ctx: ToolContext, tool: str, **arguments: Any) -> dict[str, Any]:
    spec = TOOLS[tool]
    return await spec.run(ctx, spec.args.model_validate(arguments))


@pytest.fixture
def settings(tmp_path: Path) -> McpSettings:
    return McpSettings(data_dir=tmp_path / "data")


@pytest.fixture
async def ctx(settings: McpSettings):
    async with httpx.AsyncClient(verify=default_ssl_context()) as client:
        yield ToolContext(
            settings=settings,
            workspace=Workspace(settings.workspace_roots),
            principal=Principal(1, "alice", "developer", 1, "ais_xxxxxxxx"),
            http_client=client,
        )


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


@pytest.fixture
def touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def plain_git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """git as a user would run it in the repository (no hardening): setup and controls."""
    env = {
        "PATH": CLEAN_PATH,
        "HOME": str(repo.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=check, capture_output=True, text=True
    )


def set_config(repo: Path, key: str, value: str, *, file: str = ".git/config") -> None:
    # `git config --file` only edits the file; it runs nothing from it.
    plain_git(repo, "config", "--file", file, key, value)


@pytest.fixture
def repo(settings: McpSettings) -> Path:
    """proj: same.txt (stat-dirty, unchanged: status must re-hash it), f.txt (modified)."""
    path = settings.workspace_roots[0] / "proj"
    path.mkdir(parents=True)
    plain_git(path, "init", "-q", "-b", "main")
    (path / "same.txt").write_text("same\n")
    (path / "f.txt").write_text("hello\n")
    (path / "pic.bin").write_text("picture\n")
    plain_git(path, "add", ".")
    plain_git(path, "commit", "-q", "-m", "first")
    (path / "f.txt").write_text("hello\nworld\n")
    (path / "pic.bin").write_text("picture 2\n")
    return path


_mtimes = itertools.count(1_000_000_000)


def restat(path: Path) -> None:
    """Give a file a new mtime, so the next status/diff re-reads it through its filters.

    A repository directory means its unchanged same.txt. Each mtime is new: an index
    refreshed by a previous command must not already know it.
    """
    if path.is_dir():
        path = path / "same.txt"
    if not path.exists():
        return
    mtime = next(_mtimes)
    os.utime(path, (mtime, mtime))


def ran(marker: Path) -> bool:
    return marker.exists()


def forget(marker: Path) -> None:
    marker.unlink(missing_ok=True)


def control(repo: Path, marker: Path, *args: str) -> None:
    """Plain git really runs the vector; then forget the marker."""
    restat(repo)
    plain_git(repo, *args, check=False)
    assert marker.exists(), f"control: plain `git {' '.join(args)}` should have run the marker"
    marker.unlink()
    restat(repo)


async def assert_read_tools_safe(ctx: ToolContext, repo: Path, marker: Path) -> None:
    restat(repo)
    status = await run(ctx, "git_status", repo="proj")
    changes = {c["path"]: c["status"] for c in status["changes"]}
    assert changes["f.txt"] == " M"
    assert "same.txt" not in changes
    diff = await run(ctx, "git_diff", repo="proj")
    assert "+world" in diff["output"]
    log = await run(ctx, "git_log", repo="proj")
    assert [c["subject"] for c in log["commits"]] == ["first"]
    assert not ran(marker)


def gitattributes(repo: Path, text: str) -> None:
    (repo / ".gitattributes").write_text(text)


# --- (1) filter drivers ----------------------------------------------------------


async def test_clean_filter_never_runs(ctx, repo: Path, marker: Path, touch: str) -> None:
    gitattributes(repo, "* filter=x\n")
    set_config(repo, "filter.x.clean", f"{touch}; cat")
    set_config(repo, "filter.x.smudge", f"{touch}; cat")
    set_config(repo, "filter.x.required", "true")
    control(repo, marker, "status")
    await assert_read_tools_safe(ctx, repo, marker)


async def test_process_filter_never_runs(ctx, repo: Path, marker: Path, touch: str) -> None:
    gitattributes(repo, "*.txt filter=Proc.Name\n")
    set_config(repo, "filter.Proc.Name.process", touch)
    control(repo, marker, "diff")
    await assert_read_tools_safe(ctx, repo, marker)


async def test_filter_from_a_macro_and_info_attributes(
    ctx, repo: Path, marker: Path, touch: str
) -> None:
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "attributes").write_text("[attr]evil filter=m\n* evil\n")
    set_config(repo, "filter.m.clean", f"{touch}; cat")
    control(repo, marker, "diff")
    await assert_read_tools_safe(ctx, repo, marker)


# --- (2) textconv, (3) external diff ----------------------------------------------


async def test_textconv_never_runs(ctx, repo: Path, marker: Path, touch: str) -> None:
    gitattributes(repo, "*.bin diff=conv\n")
    set_config(repo, "diff.conv.textconv", f"{touch}; cat")
    control(repo, marker, "diff")
    await assert_read_tools_safe(ctx, repo, marker)
    diff = await run(ctx, "git_diff", repo="proj", paths=["pic.bin"])
    assert "+picture 2" in diff["output"]
    assert not ran(marker)


async def test_external_diff_never_runs(ctx, repo: Path, marker: Path, touch: str) -> None:
    gitattributes(repo, "*.bin diff=ext\n")
    set_config(repo, "diff.ext.command", touch)
    set_config(repo, "diff.external", touch)
    control(repo, marker, "diff")
    await assert_read_tools_safe(ctx, repo, marker)
    staged = await run(ctx, "git_diff", repo="proj", staged=True)
    assert staged["output"] == ""
    assert not ran(marker)


# --- (4) fsmonitor, (5) hooks ------------------------------------------------------


async def test_fsmonitor_never_runs(ctx, repo: Path, marker: Path, touch: str) -> None:
    set_config(repo, "core.fsmonitor", touch)
    control(repo, marker, "status")
    await assert_read_tools_safe(ctx, repo, marker)


def install_hooks(repo: Path, touch: str) -> Path:
    names = (
        "pre-commit",
        "prepare-commit-msg",
        "commit-msg",
        "post-commit",
        "post-index-change",
        "pre-auto-gc",
        "post-checkout",
        "reference-transaction",
    )
    other = repo / "myhooks"
    for folder in (repo / ".git" / "hooks", other):
        folder.mkdir(exist_ok=True)
        for name in names:
            hook = folder / name
            hook.write_text(f"#!/bin/sh\n{touch}\n")
            hook.chmod(0o755)
    return other


async def test_hooks_never_run(ctx, repo: Path, marker: Path, touch: str) -> None:
    install_hooks(repo, touch)
    control(repo, marker, "commit", "--allow-empty", "-q", "-m", "control")
    plain_git(repo, "reset", "-q", "--soft", "HEAD~1", check=False)  # drop the control
    forget(marker)
    await assert_read_tools_safe(ctx, repo, marker)
    set_config(repo, "core.hooksPath", "myhooks")
    await assert_read_tools_safe(ctx, repo, marker)
    await run(ctx, "git_add", repo="proj", paths=["f.txt"])
    committed = await run(ctx, "git_commit", repo="proj", message="second")
    assert len(committed["commit"]) == 40
    log = await run(ctx, "git_log", repo="proj")
    assert [c["subject"] for c in log["commits"]] == ["second", "first"]
    assert not ran(marker)


# --- (6) ssh / proxy, (12) askpass / credentials, (13) packObjectsHook -------------


async def test_network_and_credential_programs_are_ignored(
    ctx, repo: Path, marker: Path, touch: str
) -> None:
    set_config(repo, "remote.origin.url", "ssh://example.invalid/x.git")
    set_config(repo, "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
    set_config(repo, "branch.main.remote", "origin")
    set_config(repo, "branch.main.merge", "refs/heads/main")
    for key in ("core.sshCommand", "core.gitProxy", "core.askPass", "credential.helper"):
        set_config(repo, key, touch)
    set_config(repo, "uploadpack.packObjectsHook", touch)
    await assert_read_tools_safe(ctx, repo, marker)
    await run(ctx, "git_add", repo="proj", paths=["f.txt"])
    await run(ctx, "git_commit", repo="proj", message="second")
    assert not ran(marker)


def partial_clone(settings: McpSettings, tmp_path: Path) -> Path:
    """proj: a blob:none partial clone whose blobs are missing (reading one fetches it)."""
    source = tmp_path / "src"
    source.mkdir()
    plain_git(source, "init", "-q", "-b", "main")
    (source / "a.txt").write_text("hello\n")
    plain_git(source, "add", ".")
    plain_git(source, "commit", "-q", "-m", "first")
    plain_git(source, "config", "uploadpack.allowFilter", "true")
    root = settings.workspace_roots[0]
    root.mkdir(parents=True, exist_ok=True)
    plain_git(
        root,
        "-c",
        "protocol.file.allow=always",
        "clone",
        "-q",
        "--no-checkout",
        "--filter=blob:none",
        f"file://{source}",
        "proj",
    )
    repo = root / "proj"
    plain_git(repo, "read-tree", "HEAD")  # index from the tree; no blob is fetched
    return repo


async def test_promisor_fetch_never_runs_ssh_command(
    ctx, settings: McpSettings, tmp_path: Path, marker: Path, touch: str
) -> None:
    repo = partial_clone(settings, tmp_path)
    set_config(repo, "remote.origin.url", "ssh://example.invalid/x.git")
    set_config(repo, "core.sshCommand", f"{touch}; false")
    control(repo, marker, "diff")  # the missing blob makes plain git run the ssh command
    with pytest.raises(ToolError) as info:
        await run(ctx, "git_diff", repo="proj")
    assert "not allowed" in info.value.message
    status = await run(ctx, "git_status", repo="proj")
    assert status["changes"] == [{"status": " D", "path": "a.txt"}]
    log = await run(ctx, "git_log", repo="proj")
    assert [c["subject"] for c in log["commits"]] == ["first"]
    assert not ran(marker)


# --- (7) aliases, (9) pagers, (10) editors -----------------------------------------


async def test_aliases_pagers_and_editors_never_run(
    ctx, repo: Path, marker: Path, touch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for command in ("status", "diff", "log", "add", "commit", "config", "rev-parse"):
        set_config(repo, f"alias.{command}", f"!{touch}")
        set_config(repo, f"pager.{command}", touch)
    for key in ("core.pager", "core.editor", "sequence.editor"):
        set_config(repo, key, touch)
    for name in ("GIT_PAGER", "PAGER", "GIT_EDITOR", "EDITOR", "VISUAL", "GIT_EXTERNAL_DIFF"):
        monkeypatch.setenv(name, touch)
    # No control: git starts a pager only on a terminal (the tools' output is a pipe, and
    # they pass --no-pager), and builtins cannot be aliased; this asserts both stay so.
    await assert_read_tools_safe(ctx, repo, marker)
    await run(ctx, "git_add", repo="proj", paths=["f.txt"])
    await run(ctx, "git_commit", repo="proj", message="second")
    assert not ran(marker)


# --- (8) include / includeIf ---------------------------------------------------------


@pytest.mark.parametrize("key", ["include.path", "includeIf.gitdir:/.path"])
async def test_config_includes_are_refused(
    ctx, repo: Path, marker: Path, touch: str, key: str
) -> None:
    (repo / "evil.cfg").write_text(f'[filter "x"]\n\tclean = {touch}; cat\n')
    gitattributes(repo, "* filter=x\n")
    set_config(repo, key, "../evil.cfg")
    control(repo, marker, "diff")
    for tool in (*READ_TOOLS, "git_add"):
        arguments = {"paths": ["f.txt"]} if tool == "git_add" else {}
        with pytest.raises(ToolError) as info:
            await run(ctx, tool, repo="proj", **arguments)
        assert info.value.code == "git_config_refused"
        assert key.lower().split(".")[0] in info.value.message.lower()
    assert not ran(marker)


@pytest.mark.parametrize("layout", ["symlinked config", "commondir"])
async def test_config_outside_git_dir_is_refused(
    ctx, repo: Path, marker: Path, touch: str, layout: str
) -> None:
    """A config that write_file could change (in the worktree) is refused, not raced."""
    config = repo / ".git" / "config"
    if layout == "symlinked config":
        (repo / "cfg").write_text(config.read_text())
        config.unlink()
        config.symlink_to("../cfg")
    else:
        (repo / ".git" / "commondir").write_text(".\n")
    for tool in (*READ_TOOLS, "git_add"):
        arguments = {"paths": ["f.txt"]} if tool == "git_add" else {}
        with pytest.raises(ToolError) as info:
            await run(ctx, tool, repo="proj", **arguments)
        assert info.value.code == "git_config_refused"
        assert ("commondir" if layout == "commondir" else "config") in info.value.message
    assert not ran(marker)


async def test_filter_name_that_is_not_utf8_is_refused(
    ctx, repo: Path, marker: Path, touch: str
) -> None:
    (repo / ".gitattributes").write_bytes(b"* filter=\xff\n")
    set_config(repo, os.fsdecode(b"filter.\xff.clean"), f"{touch}; cat")
    control(repo, marker, "diff")
    with pytest.raises(ToolError) as info:
        await run(ctx, "git_status", repo="proj")
    assert info.value.code == "git_config_refused"
    assert "UTF-8" in info.value.message
    assert not ran(marker)


# --- write side: git_add runs clean filters, git_commit runs hooks ---------------------


async def test_git_add_and_commit_neutralise_filters(
    ctx, repo: Path, marker: Path, touch: str
) -> None:
    gitattributes(repo, "*.txt filter=x\n")
    set_config(repo, "filter.x.clean", f"{touch}; sed s/world/CLEANED/")
    set_config(repo, "filter.x.process", touch)
    set_config(repo, "filter.x.required", "true")
    control(repo, marker, "diff")
    await run(ctx, "git_add", repo="proj", paths=["f.txt", ".gitattributes"])
    await run(ctx, "git_commit", repo="proj", message="second")
    assert not ran(marker)
    committed = plain_git(repo, "cat-file", "-p", "HEAD:f.txt").stdout
    assert committed == "hello\nworld\n"  # stored as is, not through the filter


# --- (2) of the brief: the environment --------------------------------------------------


async def test_git_gets_a_minimal_environment(
    ctx, repo: Path, marker: Path, touch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("AI_SUITE_DATA_DIR", "/srv/secret")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'filter.x.clean'='{touch}; cat'")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.fsmonitor")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", touch)
    monkeypatch.setenv("GIT_DIR", "/nonexistent")
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", touch)
    gitattributes(repo, "* filter=x\n")
    seen: list[dict[str, str]] = []
    real = git.run_process

    async def spy(argv: list[str], **kwargs: Any):
        seen.append(dict(kwargs["env"]))
        return await real(argv, **kwargs)

    monkeypatch.setattr(git, "run_process", spy)
    await assert_read_tools_safe(ctx, repo, marker)
    await run(ctx, "git_add", repo="proj", paths=["f.txt"])
    await run(ctx, "git_commit", repo="proj", message="second")
    assert not ran(marker)
    assert seen
    allowed = {
        "PATH",
        "LANG",
        "LC_ALL",
        "HOME",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_CONFIG_GLOBAL",
        "GIT_ATTR_NOSYSTEM",
        "GIT_TERMINAL_PROMPT",
        "GIT_OPTIONAL_LOCKS",
    }
    for env in seen:
        assert set(env) == allowed  # no filters configured: no GIT_CONFIG_COUNT either
        assert env["GIT_DIR"] == ".git"
        assert env["PATH"] == CLEAN_PATH
        home = Path(env["HOME"])
        assert home.name.startswith("ai-suite-git-home-")
        assert not ran(home)  # a fresh empty directory per call, removed after it


# --- a viewer over REST, the path the red team used ------------------------------------


async def test_viewer_git_status_over_rest_runs_no_filter(
    start_mcp: Callable[..., Any], marker: Path, touch: str
) -> None:
    server = start_mcp()
    path = server.workspace / "proj"
    path.mkdir(parents=True)
    plain_git(path, "init", "-q", "-b", "main")
    (path / "same.txt").write_text("same\n")
    plain_git(path, "add", ".")
    plain_git(path, "commit", "-q", "-m", "first")
    gitattributes(path, "* filter=x\n")
    set_config(path, "filter.x.clean", f"{touch}; cat")
    control(path, marker, "status")
    viewer = server.key("viewer", "viewer")
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(
            "/tools/git_status/call",
            json={"arguments": {"repo": "proj"}},
            headers={"Authorization": f"Bearer {viewer}"},
        )
    assert response.status_code == 200, response.text
    assert not ran(marker)
    assert "same.txt" not in response.text


# --- submodules: their own configuration is out of reach of the overrides ------------


async def test_submodule_filters_never_run(
    ctx, repo: Path, marker: Path, touch: str, tmp_path: Path
) -> None:
    source = tmp_path / "subsrc"
    source.mkdir()
    plain_git(source, "init", "-q", "-b", "main")
    (source / "a.txt").write_text("a\n")
    plain_git(source, "add", ".")
    plain_git(source, "commit", "-q", "-m", "sub")
    plain_git(
        repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(source), "sub"
    )
    plain_git(repo, "commit", "-q", "-m", "add sub")
    sub = repo / "sub"
    (sub / ".gitattributes").write_text("* filter=s\n")
    set_config(repo, "filter.s.clean", f"{touch}; cat", file=".git/modules/sub/config")
    restat(sub / "a.txt")
    plain_git(repo, "status", check=False)
    assert ran(marker), "control: plain `git status` should have run the submodule's filter"
    forget(marker)
    restat(sub / "a.txt")
    status = await run(ctx, "git_status", repo="proj")
    assert {c["path"]: c["status"] for c in status["changes"]}["f.txt"] == " M"
    assert not ran(marker), "status"
    diff = await run(ctx, "git_diff", repo="proj")
    assert "+world" in diff["output"]
    assert not ran(marker), "diff"
    for paths in (["f.txt", "sub"], ["."]):
        with pytest.raises(ToolError) as info:
            await run(ctx, "git_add", repo="proj", paths=paths)
        assert info.value.code == "git_submodule_refused"
        assert "'sub'" in info.value.message
    assert not ran(marker), "add"
    await run(ctx, "git_add", repo="proj", paths=["f.txt"])
    await run(ctx, "git_commit", repo="proj", message="third")
    log = await run(ctx, "git_log", repo="proj")
    assert [c["subject"] for c in log["commits"]] == ["third", "add sub", "first"]
    assert not ran(marker)
