"""Git tools, run as ``git`` with an argv list inside a repository in a workspace root.

Repository configuration is not trusted: hooks, fsmonitor, external diff and
textconv programs are switched off on the command line, the system and global
configuration are ignored, and pathspecs are literal (no ``:(magic)``).
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import Any

from pydantic import Field, field_validator

from services.mcp.process import CLEAN_PATH, ProcessResult, clean_env, run_process
from services.mcp.sandbox import SandboxError, parse_parts
from services.mcp.tools.base import ToolArgs, ToolContext, ToolError, ToolSpec

SAFE_OPTIONS = (
    "--no-pager",
    "--literal-pathspecs",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.pager=cat",
    "-c",
    "credential.helper=",
    "-c",
    "protocol.allow=never",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "color.ui=false",
)
RepoField = Field(
    default=".", max_length=4096, description="Repository directory inside the workspace."
)


class RepoArgs(ToolArgs):
    repo: str = RepoField


class GitDiffArgs(ToolArgs):
    repo: str = RepoField
    staged: bool = Field(default=False, description="Show staged changes (git diff --cached).")
    paths: list[str] = Field(default_factory=list, max_length=256)

    @field_validator("paths")
    @classmethod
    def _relative(cls, paths: list[str]) -> list[str]:
        return _check_paths(paths)


class GitLogArgs(ToolArgs):
    repo: str = RepoField
    max_count: int = Field(default=20, ge=1, le=500)


class GitAddArgs(ToolArgs):
    repo: str = RepoField
    paths: list[str] = Field(min_length=1, max_length=256, description="Paths in the repo.")

    @field_validator("paths")
    @classmethod
    def _relative(cls, paths: list[str]) -> list[str]:
        return _check_paths(paths)


class GitCommitArgs(ToolArgs):
    repo: str = RepoField
    message: str = Field(min_length=1, max_length=10_000)

    @field_validator("message")
    @classmethod
    def _no_nul(cls, message: str) -> str:
        if "\x00" in message:
            raise ValueError("the message cannot contain NUL bytes")
        return message


def _check_paths(paths: list[str]) -> list[str]:
    checked = []
    for path in paths:
        if path.startswith("/"):
            raise ValueError(f"{path!r}: use paths relative to the repository")
        try:
            parts = parse_parts(path)
        except SandboxError as exc:
            raise ValueError(f"{path!r}: {exc.message}") from None
        checked.append("/".join(parts) or ".")
    return checked


def _git_executable() -> str:
    found = shutil.which("git", path=CLEAN_PATH)
    if found is None:
        raise ToolError(f"git is not installed on {CLEAN_PATH}", code="git_not_installed")
    return found


async def run_git(
    ctx: ToolContext, repo: str, git_args: list[str], *, identity: bool = False
) -> ProcessResult:
    argv = [_git_executable(), *SAFE_OPTIONS]
    if identity:
        user = ctx.principal.user
        argv += ["-c", f"user.name={user}", "-c", f"user.email={user}@local-ai-suite"]
    try:
        location = ctx.workspace.locate(repo)
        with ctx.workspace.open_dir(location) as repo_fd:
            try:
                info = os.stat(".git", dir_fd=repo_fd, follow_symlinks=False)
            except FileNotFoundError:
                info = None
            if info is None or not stat.S_ISDIR(info.st_mode):
                raise ToolError(
                    f"{location.display!r} is not a git repository (no .git directory there);"
                    " create one with `git init` or pass repo=<path of the repository>",
                    code="not_a_git_repository",
                )
            # GIT_DIR/GIT_WORK_TREE relative to the pinned working directory: git never
            # searches parent directories (which may be a repository outside the workspace).
            env = clean_env(
                location.root,
                {
                    "GIT_DIR": ".git",
                    "GIT_WORK_TREE": ".",
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_CONFIG_GLOBAL": os.devnull,
                    "GIT_TERMINAL_PROMPT": "0",
                    "GIT_OPTIONAL_LOCKS": "0",
                },
            )
            result = await run_process(
                [*argv, *git_args],
                cwd_fd=repo_fd,
                env=env,
                time_limit=ctx.settings.command_timeout,
                max_output=ctx.settings.max_output_bytes,
            )
    except SandboxError as exc:
        raise ToolError.from_sandbox(exc) from None
    if result.timed_out:
        raise ToolError(
            f"git {git_args[0]} did not finish within {ctx.settings.command_timeout:g}s",
            code="command_timeout",
            status=504,
        )
    if result.exit_code != 0:
        raise ToolError(
            f"git {git_args[0]} failed (exit {result.exit_code}): {result.stderr.strip()[:2000]}",
            code="git_failed",
        )
    return result


def _output(result: ProcessResult) -> dict[str, Any]:
    return {
        "output": result.stdout,
        "bytes": result.stdout_bytes,
        "truncated": result.stdout_truncated,
    }


async def git_status(ctx: ToolContext, args: RepoArgs) -> dict[str, Any]:
    result = await run_git(
        ctx, args.repo, ["status", "--porcelain=v1", "--branch", "--untracked-files=all"]
    )
    lines = result.stdout.splitlines()
    branch = lines[0][3:] if lines and lines[0].startswith("## ") else None
    changes = [
        {"status": line[:2], "path": line[3:]} for line in lines if not line.startswith("## ")
    ]
    return {
        "branch": branch,
        "clean": not changes,
        "changes": changes,
        "truncated": result.stdout_truncated,
    }


async def git_diff(ctx: ToolContext, args: GitDiffArgs) -> dict[str, Any]:
    git_args = ["diff", "--no-ext-diff", "--no-textconv", "--no-color"]
    if args.staged:
        git_args.append("--cached")
    result = await run_git(ctx, args.repo, [*git_args, "--", *args.paths])
    return {"staged": args.staged, **_output(result)}


async def git_log(ctx: ToolContext, args: GitLogArgs) -> dict[str, Any]:
    result = await run_git(
        ctx,
        args.repo,
        ["log", f"--max-count={args.max_count}", "--format=%H%x1f%an%x1f%aI%x1f%s", "--no-color"],
    )
    commits = []
    for line in result.stdout.splitlines():
        fields = line.split("\x1f")
        if len(fields) == 4:
            commits.append(dict(zip(("hash", "author", "date", "subject"), fields, strict=True)))
    return {"commits": commits, "truncated": result.stdout_truncated}


async def git_add(ctx: ToolContext, args: GitAddArgs) -> dict[str, Any]:
    await run_git(ctx, args.repo, ["add", "--", *args.paths])
    return {"added": args.paths}


async def git_commit(ctx: ToolContext, args: GitCommitArgs) -> dict[str, Any]:
    await run_git(ctx, args.repo, ["commit", "--no-verify", "-m", args.message], identity=True)
    head = await run_git(ctx, args.repo, ["rev-parse", "HEAD"])
    return {"commit": head.stdout.strip(), "author": ctx.principal.user}


def _repo(args: Any) -> dict[str, Any]:
    return {"repo": args.repo}


TOOLS = (
    ToolSpec(
        "git_status",
        "Show the branch and changed files of a repository.",
        RepoArgs,
        git_status,
        _repo,
    ),
    ToolSpec(
        "git_diff",
        "Show unstaged (or staged) changes of a repository.",
        GitDiffArgs,
        git_diff,
        lambda a: {"repo": a.repo, "staged": a.staged, "paths": len(a.paths)},
    ),
    ToolSpec(
        "git_log",
        "List recent commits (hash, author, date, subject).",
        GitLogArgs,
        git_log,
        lambda a: {"repo": a.repo, "max_count": a.max_count},
    ),
    ToolSpec(
        "git_add",
        "Stage files for the next commit. Needs approval.",
        GitAddArgs,
        git_add,
        lambda a: {"repo": a.repo, "paths": a.paths[:20]},
    ),
    ToolSpec(
        "git_commit",
        "Commit the staged changes with a message. Needs approval.",
        GitCommitArgs,
        git_commit,
        lambda a: {"repo": a.repo, "message": a.message[:80]},
    ),
)
