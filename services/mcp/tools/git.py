"""Git tools, run as ``git`` with an argv list inside a repository in a workspace root.

Nothing in a repository (its ``.git/config``, ``.gitattributes``, hooks, worktree files)
can make git start a program; docs/mcp.md "Git" lists each vector and how it is closed:

- git gets a minimal environment (PATH, LANG/LC_ALL=C, HOME = an empty temporary
  directory, the GIT_* variables below); nothing of the service's environment (keys,
  data dir, GIT_EXTERNAL_DIFF, GIT_PAGER, GIT_CONFIG_PARAMETERS ...) reaches it;
- system and global configuration and system attributes are ignored;
- hooks, fsmonitor, pagers, editors, askpass, credential helpers, network transports,
  signature checks, submodule recursion and auto-maintenance are switched off on the
  command line (command-line configuration wins over the repository's);
- filter drivers (clean/smudge/process) are defined only in configuration, so the
  repository's configuration is listed first (``git config --list``, which runs
  nothing) and every driver found is overridden with an empty command;
- external diff and textconv: ``--no-ext-diff --no-textconv`` (git diff; nothing else
  produces patches);
- refused (``git_config_refused``): ``include``/``includeIf``, a symlinked
  ``.git/config``, a ``.git/commondir`` (configuration that may live in the worktree and
  change between the listing and the command), a configuration too large to list whole,
  a filter driver name that is not UTF-8; ``git_add`` of a submodule
  (``git_submodule_refused``: git would run inside it under its own configuration);
- pathspecs are literal (no ``:(magic)``).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from typing import Any

from pydantic import Field, field_validator

from services.mcp.process import CLEAN_PATH, ProcessResult, run_process
from services.mcp.sandbox import SandboxError, parse_parts
from services.mcp.tools.base import ToolArgs, ToolContext, ToolError, ToolSpec, shown

# Command-line configuration: it overrides the repository's (and included) files.
SAFE_CONFIG = (
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("core.pager", "cat"),
    ("core.editor", ":"),
    ("sequence.editor", ":"),
    ("core.askPass", ""),
    ("core.attributesFile", os.devnull),
    ("credential.helper", ""),
    ("protocol.allow", "never"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("log.showSignature", "false"),
    ("diff.ignoreSubmodules", "all"),
    ("submodule.recurse", "false"),
    ("status.submoduleSummary", "false"),
    ("maintenance.auto", "false"),
    ("gc.auto", "0"),
    ("color.ui", "false"),
)
SAFE_OPTIONS = (
    "--no-pager",
    "--literal-pathspecs",
    *(arg for key, value in SAFE_CONFIG for arg in ("-c", f"{key}={value}")),
)
# Filter driver keys that name a program, and what each is overridden with.
_FILTER_OVERRIDES = {"clean": "", "smudge": "", "process": "", "required": "false"}
_REFUSED_SECTIONS = ("include", "includeif")
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


def _refuse(message: str) -> ToolError:
    return ToolError(message, code="git_config_refused", status=403)


def _check_config_files(repo_fd: int) -> None:
    """The configuration git reads must be files that only git (or run_command) can change.

    A ``.git/config`` symlinked to a worktree file, or a ``.git/commondir`` (which moves the
    configuration elsewhere, for example into the worktree), could be rewritten by
    ``write_file`` between the listing of filter drivers and the command.
    """
    for name in ("commondir", "config", "config.worktree"):
        try:
            info = os.stat(f".git/{name}", dir_fd=repo_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if name == "commondir":
            raise _refuse(
                "the repository's .git/commondir points git at configuration elsewhere;"
                " git tools only run in plain repositories (.git with its own config)"
            )
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(
                f"the repository's .git/{name} is not a regular file (a symlink?);"
                " git tools only read configuration kept inside .git"
            )


def git_env(home: str, overrides: list[tuple[str, str]] | None = None) -> dict[str, str]:
    """The whole environment git runs with: nothing is inherited from the service."""
    env = {
        "PATH": CLEAN_PATH,
        "LANG": "C",
        "LC_ALL": "C",
        "HOME": home,
        # GIT_DIR/GIT_WORK_TREE relative to the pinned working directory: git never
        # searches parent directories (which may be a repository outside the workspace).
        "GIT_DIR": ".git",
        "GIT_WORK_TREE": ".",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",
    }
    if overrides:
        # GIT_CONFIG_KEY_n/VALUE_n: no quoting or '=' splitting, any subsection name works.
        env["GIT_CONFIG_COUNT"] = str(len(overrides))
        for index, (key, value) in enumerate(overrides):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def config_overrides(listing: str) -> list[tuple[str, str]]:
    """Overrides for every program-running key in ``git config --list --null`` output.

    Raises ToolError for configuration that cannot be neutralised (includes).
    """
    overrides: list[tuple[str, str]] = []
    seen: set[str] = set()
    for entry in listing.split("\0"):
        key = entry.split("\n", 1)[0]
        if not key:
            continue
        section, _, rest = key.partition(".")
        subsection, _, name = rest.rpartition(".")
        section, name = section.lower(), name.lower()
        if section in _REFUSED_SECTIONS:
            raise _refuse(
                f"the repository's git configuration sets {key!r}; git tools do not run in"
                " repositories whose configuration includes other files (an included file"
                " could define programs for git to run). Remove the include from .git/config"
            )
        if section == "filter" and subsection and name in _FILTER_OVERRIDES:
            if "\ufffd" in subsection:
                # Output is decoded with "replace": an override of the decoded name would
                # not match the driver git uses.
                raise _refuse(
                    f"the repository's git configuration defines a filter driver whose name"
                    f" is not valid UTF-8 ({key!r}); rename it in .git/config"
                )
            override = f"filter.{subsection}.{name}"
            if override not in seen:
                seen.add(override)
                overrides.append((override, _FILTER_OVERRIDES[name]))
    return overrides


async def _run(
    ctx: ToolContext, command: str, argv: list[str], repo_fd: int, env: dict[str, str]
) -> ProcessResult:
    result = await run_process(
        argv,
        cwd_fd=repo_fd,
        env=env,
        time_limit=ctx.settings.command_timeout,
        max_output=ctx.settings.max_output_bytes,
    )
    if result.timed_out:
        raise ToolError(
            f"git {command} did not finish within {ctx.settings.command_timeout:g}s",
            code="command_timeout",
            status=504,
        )
    if result.exit_code != 0:
        raise ToolError(
            f"git {command} failed (exit {result.exit_code}): {result.stderr.strip()[:2000]}",
            code="git_failed",
        )
    return result


async def run_git(
    ctx: ToolContext, repo: str, git_args: list[str], *, identity: bool = False
) -> ProcessResult:
    base = [_git_executable(), *SAFE_OPTIONS]
    extra: list[str] = []
    if identity:
        user = ctx.principal.user
        extra += ["-c", f"user.name={user}", "-c", f"user.email={user}@local-ai-suite"]
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
            _check_config_files(repo_fd)
            with tempfile.TemporaryDirectory(prefix="ai-suite-git-home-") as home:
                # Reading the configuration runs nothing; it finds the filter drivers.
                listing = await _run(
                    ctx, "config", [*base, "config", "--list", "--null"], repo_fd, git_env(home)
                )
                if listing.stdout_truncated:
                    raise ToolError(
                        "the repository's git configuration is larger than MCP_MAX_OUTPUT_BYTES;"
                        " git tools refuse to run where they cannot read all of it",
                        code="git_config_refused",
                        status=403,
                    )
                env = git_env(home, config_overrides(listing.stdout))
                return await _run(ctx, git_args[0], [*base, *extra, *git_args], repo_fd, env)
    except SandboxError as exc:
        raise ToolError.from_sandbox(exc) from None


def _output(result: ProcessResult) -> dict[str, Any]:
    return {
        "output": result.stdout,
        "bytes": result.stdout_bytes,
        "truncated": result.stdout_truncated,
    }


async def git_status(ctx: ToolContext, args: RepoArgs) -> dict[str, Any]:
    result = await run_git(
        ctx,
        args.repo,
        [
            "status",
            "--porcelain=v1",
            "--branch",
            "--untracked-files=all",
            "--ignore-submodules=all",
        ],
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
    git_args = ["diff", "--no-ext-diff", "--no-textconv", "--no-color", "--ignore-submodules=all"]
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
    # `git add` of a submodule runs `git status` inside it, under the submodule's own
    # configuration (its filter drivers), which the overrides do not cover: refused.
    staged = await run_git(ctx, args.repo, ["ls-files", "--stage", "-z", "--", *args.paths])
    submodules = [
        entry.partition("\t")[2]
        for entry in staged.stdout.split("\0")
        if entry.startswith("160000 ")
    ]
    if submodules:
        raise ToolError(
            f"git_add does not stage submodules ({', '.join(repr(s) for s in submodules[:20])}):"
            " git would run inside them under their own configuration; pass the other paths",
            code="git_submodule_refused",
        )
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
        lambda a: {"repo": shown(a.repo), "paths": shown(a.paths)},
    ),
    ToolSpec(
        "git_commit",
        "Commit the staged changes with a message. Needs approval.",
        GitCommitArgs,
        git_commit,
        lambda a: {"repo": shown(a.repo), "message": shown(a.message)},
    ),
)
