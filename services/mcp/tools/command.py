"""``run_command``: an allowlisted program with an argv list, never a shell, in a box.

Every call runs in the box of services/mcp/box.py (bubblewrap: own PID, mount, user
and network namespaces, rlimits); where no box can be had, the call is refused before
an approval is created, never run unboxed. Per-program argument rules (tools/argrules.py)
are checked at the same point.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from pydantic import Field, field_validator

from services.mcp.box import Box, BoxUnavailable, PidsCgroup
from services.mcp.process import CLEAN_PATH, clean_env, run_process
from services.mcp.sandbox import SandboxError
from services.mcp.settings import McpSettings
from services.mcp.tools.argrules import check_arguments
from services.mcp.tools.base import ToolArgs, ToolContext, ToolError, ToolSpec, shown

MAX_ARGS = 256
MAX_ARG_CHARS = 8192


class RunCommandArgs(ToolArgs):
    argv: list[str] = Field(
        min_length=1,
        max_length=MAX_ARGS,
        description='Program and arguments as a list, e.g. ["pytest", "-q"]. No shell: '
        "pipes, redirections and ';' are passed to the program as plain text.",
    )
    cwd: str = Field(
        default=".", max_length=4096, description="Working directory inside the workspace."
    )
    timeout: float | None = Field(
        default=None, gt=0, description="Seconds; at most MCP_COMMAND_TIMEOUT."
    )

    @field_validator("argv")
    @classmethod
    def _plain_strings(cls, argv: list[str]) -> list[str]:
        for arg in argv:
            if "\x00" in arg:
                raise ValueError("arguments cannot contain NUL bytes")
            if len(arg) > MAX_ARG_CHARS:
                raise ValueError(f"each argument is limited to {MAX_ARG_CHARS} characters")
        if not argv[0]:
            raise ValueError("argv[0] (the program) is empty")
        return argv


def resolve_executable(program: str, allowlist: frozenset[str]) -> str:
    """The absolute path of an allowlisted program, found on a clean PATH only."""
    name = os.path.basename(program)
    if name not in allowlist:
        raise ToolError(
            f"{name!r} is not an allowed command; allowed: {', '.join(sorted(allowlist))}"
            " (MCP_COMMAND_ALLOWLIST)",
            code="command_not_allowed",
            status=403,
        )
    found = shutil.which(name, path=CLEAN_PATH)
    if found is None:
        raise ToolError(
            f"{name!r} is allowed but not installed on {CLEAN_PATH}", code="command_not_found"
        )
    # A path given by the caller must be the very program the allowlist resolves to,
    # so "/tmp/evil/ls" is not accepted for "ls".
    if "/" in program and os.path.realpath(program) != os.path.realpath(found):
        raise ToolError(
            f"{program!r} is not the allowlisted {name!r} ({found}); pass just {name!r}",
            code="command_not_allowed",
            status=403,
        )
    return found


def _unavailable(exc: BoxUnavailable) -> ToolError:
    return ToolError(str(exc), code="sandbox_unavailable", status=503)


def check_command(settings: McpSettings, args: RunCommandArgs) -> None:
    """Before the approval: the program is allowed, its arguments pass, a box can be had."""
    resolve_executable(args.argv[0], settings.command_allowlist)
    check_arguments(args.argv)
    try:
        Box(settings).check()
    except BoxUnavailable as exc:
        raise _unavailable(exc) from None


async def run_command(ctx: ToolContext, args: RunCommandArgs) -> dict[str, Any]:
    check_command(ctx.settings, args)
    executable = resolve_executable(args.argv[0], ctx.settings.command_allowlist)
    box = Box(ctx.settings)
    limit = ctx.settings.command_timeout
    timeout = min(args.timeout or limit, limit)
    cgroup = PidsCgroup.create(ctx.settings.command_max_processes)
    try:
        location = ctx.workspace.locate(args.cwd)
        # Verified (component by component, no symlinks), then resolved again by bwrap
        # inside the box, where only the workspace root and system files exist: a path
        # swapped after the check cannot lead anywhere else. No host descriptor is
        # passed in (openat(fd, "..") would leave the box).
        with ctx.workspace.open_dir(location):
            pass
        result = await run_process(
            box.argv([executable, *args.argv[1:]], root=location.root, cwd=location.absolute),
            cwd_fd=None,
            env=clean_env(location.root),
            time_limit=timeout,
            max_output=ctx.settings.max_output_bytes,
            preexec=cgroup.join if cgroup is not None else None,
        )
    except BoxUnavailable as exc:
        raise _unavailable(exc) from None
    except SandboxError as exc:
        raise ToolError.from_sandbox(exc) from None
    except OSError as exc:
        raise ToolError(f"could not start {args.argv[0]!r}: {exc.strerror}") from None
    finally:
        if cgroup is not None:
            await cgroup.remove()
    if result.timed_out:
        output = result.as_dict()
        del output["exit_code"], output["timed_out"]
        raise ToolError(
            f"{args.argv[0]!r} did not finish within {timeout:g}s and was killed"
            " (with every process it started); partial_output has what it printed until then",
            code="command_timeout",
            status=504,
            extra={"partial_output": output},
        )
    return {"argv": args.argv, "cwd": location.display, **result.as_dict()}


TOOLS = (
    ToolSpec(
        "run_command",
        "Run an allowlisted program with an argv list (no shell) in the workspace. "
        "Needs approval.",
        RunCommandArgs,
        run_command,
        # Every argument (secrets redacted): what the approver approves is what runs.
        lambda a: {"argv": shown(a.argv), "cwd": shown(a.cwd), "timeout": a.timeout},
        precheck=check_command,
    ),
)
