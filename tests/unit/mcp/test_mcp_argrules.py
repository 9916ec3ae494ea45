"""run_command's per-program argument rules, as a table (the refusals are tested end to end,
with no approval created, in tests/integration/mcp/test_mcp_command_box.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.mcp.box import Box
from services.mcp.settings import McpSettings
from services.mcp.tools.argrules import check_arguments
from services.mcp.tools.base import ToolError


@pytest.mark.parametrize(
    "argv",
    [
        ["git", "status", "--short"],
        ["git", "-P", "log", "-c", "-n", "3"],  # log -c is a combined diff, not a config
        ["git", "--no-pager", "diff", "--stat"],
        ["git", "add", "-u"],  # -u is only --upload-pack for clone
        ["git", "commit", "-m", "fix: x"],
        ["git", "clone", "--depth", "1", "../repo", "copy"],
        ["/usr/bin/git", "show", "HEAD:README.md"],
        ["python3", "-c", "print(1)"],  # no rules: the box is what contains it
    ],
)
def test_allowed_arguments_pass(argv: list[str]) -> None:
    check_arguments(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["git"],
        ["git", "--git-dir=/elsewhere", "status"],
        ["git", "--work-tree", "/", "status"],
        ["git", "clone", "--template=/tmp/t", "a", "b"],
        ["git", "push", "--receive-pack=id", "origin"],
        ["git", "fetch", "--upload-pack", "id", "origin"],
        ["git", "clone", "-c", "core.sshCommand=id", "a", "b"],
        ["git", "clone", "--config", "core.sshCommand=id", "a", "b"],
        ["git", "grep", "--open-files-in-pager=id", "x"],
        ["git", "rebase", "--exec", "id", "main"],
        ["git", "pull", "fd::3"],
        ["git", "difftool", "--extcmd=id"],
        ["/usr/bin/git", "-c", "core.pager=id", "log"],
    ],
)
def test_refused_arguments_are_a_403_naming_the_rule(argv: list[str]) -> None:
    with pytest.raises(ToolError) as info:
        check_arguments(argv)
    assert (info.value.status, info.value.code) == (403, "argument_not_allowed")
    assert "docs/mcp.md" in info.value.message


def test_box_hides_the_data_dir_and_shares_the_network_only_when_configured(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    settings = McpSettings(data_dir=data_dir, workspace_roots=[str(tmp_path)])
    box = Box(settings)
    if box.bwrap is None or box.prlimit is None:
        pytest.skip("bwrap or prlimit not installed (make system-deps)")
    argv = box.argv(["ls"], root=tmp_path, cwd=tmp_path)
    bind = argv.index("--bind")
    assert argv[bind : bind + 3] == ["--bind", str(tmp_path), str(tmp_path)]
    # Mounted after the workspace, so it covers the data dir inside it.
    hidden = argv.index("--tmpfs", bind)
    assert argv[hidden + 1 : hidden + 4] == [str(data_dir), "--remount-ro", str(data_dir)]
    assert "--share-net" not in argv
    assert "--clearenv" in argv
    assert argv[argv.index("--") + 1] == box.prlimit
    networked = Box(McpSettings(data_dir=data_dir, command_network=True))
    assert "--share-net" in networked.argv(["ls"], root=tmp_path, cwd=tmp_path)
