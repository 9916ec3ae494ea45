"""Per-program argument rules for ``run_command``: THE table, checked before any approval.

The box (services/mcp/box.py) contains whatever an allowlisted program runs; these rules
keep an approver from being asked to approve a program that would run *another* program
chosen by its arguments, which an argv list does not make obvious (``git -c
alias.x=!sh x``, ``git clone --upload-pack=...``). A refused argv is a 403 naming the
rule; docs/mcp.md "run_command" lists them.
"""

from __future__ import annotations

from collections.abc import Callable

from services.mcp.tools.base import ToolError

# Options allowed before git's subcommand; every other one (-c, -C, --exec-path,
# --git-dir, --work-tree, --config-env, --namespace ...) changes what git runs or where.
GIT_GLOBAL_OPTIONS = frozenset({"--no-pager", "-P", "--literal-pathspecs", "--no-optional-locks"})
# Builtin subcommands only: anything else is an alias or a git-<name> program on PATH.
# Not here on purpose: config (aliases, core.*), submodule (foreach), bisect (run),
# difftool/mergetool (--extcmd, tools), filter-branch, daemon, archive (--remote), am,
# send-email, credential*, instaweb, worktree, remote/ls-remote (transports).
GIT_SUBCOMMANDS = frozenset(
    {
        "add",
        "blame",
        "branch",
        "cat-file",
        "checkout",
        "cherry-pick",
        "clone",
        "commit",
        "describe",
        "diff",
        "fetch",
        "grep",
        "init",
        "log",
        "ls-files",
        "ls-tree",
        "merge",
        "merge-base",
        "mv",
        "pull",
        "push",
        "rebase",
        "reset",
        "restore",
        "rev-list",
        "rev-parse",
        "revert",
        "rm",
        "shortlog",
        "show",
        "stash",
        "status",
        "switch",
        "tag",
    }
)
# Long options that name a program to run or a configuration to apply, in any subcommand.
GIT_REFUSED_LONG = (
    "--upload-pack",
    "--receive-pack",
    "--exec",
    "--template",
    "--config",
    "--config-env",
    "--open-files-in-pager",
    "--extcmd",
)
# Short options (alone or in a cluster like -qu) per subcommand that do the same.
GIT_REFUSED_SHORT = {
    "clone": {"u": "--upload-pack", "c": "--config"},
    "grep": {"O": "--open-files-in-pager"},
    "rebase": {"x": "--exec"},
}
# Transports that run a command: ext::<command>, fd::.
GIT_REFUSED_URL_PREFIXES = ("ext::", "fd::")


def _refuse(program: str, rule: str) -> ToolError:
    return ToolError(
        f"{program}: {rule} (run_command argument rules, docs/mcp.md)",
        code="argument_not_allowed",
        status=403,
    )


def check_git(argv: list[str]) -> None:
    rest = argv[1:]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option not in GIT_GLOBAL_OPTIONS:
            raise _refuse(
                "git",
                f"option {option!r} before the subcommand is not allowed; allowed:"
                f" {', '.join(sorted(GIT_GLOBAL_OPTIONS))}",
            )
    if not rest:
        raise _refuse("git", "a subcommand is required")
    subcommand, options = rest[0], rest[1:]
    if subcommand not in GIT_SUBCOMMANDS:
        raise _refuse(
            "git",
            f"subcommand {subcommand!r} is not allowed (aliases and external git-* commands"
            f" neither); allowed: {', '.join(sorted(GIT_SUBCOMMANDS))}",
        )
    short = GIT_REFUSED_SHORT.get(subcommand, {})
    for arg in options:
        if arg == "--":
            continue  # the rest may be paths, but a URL-looking path is refused below too
        name = arg.split("=", 1)[0]
        for refused in GIT_REFUSED_LONG:
            # git accepts unambiguous prefixes of long options (--upload-p).
            if name.startswith("--") and len(name) > 3 and refused.startswith(name):
                raise _refuse("git", f"option {refused!r} is not allowed")
            if name == refused:
                raise _refuse("git", f"option {refused!r} is not allowed")
        if arg.startswith("-") and not arg.startswith("--"):
            for letter, long_name in short.items():
                if letter in arg[1:]:
                    raise _refuse(
                        "git", f"option -{letter} ({long_name}) of git {subcommand} is not allowed"
                    )
        if arg.lower().startswith(GIT_REFUSED_URL_PREFIXES) or "::" in arg.split("/", 1)[0]:
            raise _refuse("git", f"transport {arg.split('::', 1)[0]}:: runs a command")


RULES: dict[str, Callable[[list[str]], None]] = {"git": check_git}


def check_arguments(argv: list[str]) -> None:
    """Raise a 403 ToolError if ``argv`` breaks its program's rules (no rules: nothing)."""
    program = argv[0].rsplit("/", 1)[-1]
    rule = RULES.get(program)
    if rule is not None:
        rule(argv)
