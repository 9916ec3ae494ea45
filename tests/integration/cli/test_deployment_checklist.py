"""docs/ops/DEPLOYMENT_CHECKLIST.md: every command in it is run here or marked as needing a
running deployment or a GitHub runner (and the `ai-suite` commands of those exist)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from services.cli.main import cli

ROOT = Path(__file__).resolve().parents[3]
CHECKLIST = ROOT / "docs" / "ops" / "DEPLOYMENT_CHECKLIST.md"
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
TAGS = {"checklist:run", "checklist:promtool", "checklist:deployment", "checklist:github"}
# Variables the platform reads: the caller's shell must not change what the checklist does.
SETTINGS_PREFIXES = ("AI_SUITE_", "GATEWAY_", "MCP_", "RAG_", "PROMETHEUS_", "ALERTMANAGER_")
SETTINGS_PREFIXES += ("ALERTS_", "MONITORING_", "INFERENCE_", "QDRANT_")


def blocks() -> list[tuple[str, str]]:
    """(tag, body) of every fenced block, in order."""
    found = []
    for match in FENCE.finditer(CHECKLIST.read_text()):
        words = match["info"].split()
        tags = [word for word in words if word.startswith("checklist:")]
        assert len(tags) == 1, f"untagged or doubly tagged block:\n{match.group(0)}"
        assert tags[0] in TAGS, f"unknown tag {tags[0]}; use one of {sorted(TAGS)}"
        found.append((tags[0], match["body"]))
    return found


def run_blocks(tmp_path: Path, tags: set[str]) -> subprocess.CompletedProcess[str]:
    script = "\n".join(body for tag, body in blocks() if tag in tags)
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    env["AI_SUITE_DATA_DIR"] = str(tmp_path / "data")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_block_is_tagged_and_some_run() -> None:
    tags = [tag for tag, _ in blocks()]
    assert tags.count("checklist:run") >= 5
    assert "checklist:deployment" in tags
    assert "checklist:github" in tags


def test_the_runnable_commands_run_against_a_fresh_data_dir(tmp_path: Path) -> None:
    result = run_blocks(tmp_path, {"checklist:run"})

    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    data_dir = tmp_path / "data"
    backups = list((data_dir / "backups").glob("security-*.db"))
    assert len(backups) == 1
    assert "integrity_check ok" in result.stderr
    assert len(list(data_dir.glob("security.db.replaced-*"))) == 1
    assert "revoked key" in result.stderr
    assert (data_dir / "deploy-check" / "alertmanager" / "alertmanager.yml").is_file()


def test_the_promtool_commands_run(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (`make system-deps`)")
    result = run_blocks(tmp_path, {"checklist:promtool"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _ai_suite_commands(body: str) -> list[list[str]]:
    commands = []
    for line in body.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        for index, word in enumerate(words):
            if word == "ai-suite":
                commands.append([w for w in words[index + 1 :] if not w.startswith("-")][:2])
    return commands


def test_the_ai_suite_commands_of_every_block_exist() -> None:
    checked = 0
    for _, body in blocks():
        for words in _ai_suite_commands(body):
            group: click.Command = cli
            for word in words:
                if not isinstance(group, click.Group):
                    break
                command = group.get_command(click.Context(group), word)
                assert command is not None, f"`ai-suite {' '.join(words)}`: no command {word!r}"
                group = command
            checked += 1
    assert checked >= 10
