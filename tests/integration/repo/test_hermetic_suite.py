"""The tests pass whatever the caller exported and whatever .env files lie around (issue 17):
the settings, CLI and monitoring unit tests run in a pytest subprocess under a hostile
environment, every platform variable set, a junk data directory and a junk ./.env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.cli.configdoc import platform_variables
from services.core.settings import NO_ENV_FILE_VARIABLE

ROOT = Path(__file__).resolve().parents[3]

# The settings, CLI and monitoring tests, and those issue 17 found failing under such an
# environment (settings defaults in MCP, RAG and monitoring, system_info, Alertmanager
# rendering, the alert listener's busy port).
SUBSET = (
    "tests/unit/core",
    "tests/unit/cli",
    "tests/unit/monitoring",
    "tests/unit/mcp/test_mcp_settings.py",
    "tests/unit/mcp/test_mcp_tools.py",
    "tests/unit/mcp/test_mcp_bridge.py",
    "tests/unit/mcp/test_mcp_cli_approvals.py",
    "tests/unit/rag/test_rag_settings.py",
    "tests/unit/gateway/test_gateway_discovery.py",
)

# What a developer's shell plausibly exports (the values issue 17 reproduced with) ...
REALISTIC = {
    "GATEWAY_PORT": "18000",
    "RAG_PORT": "18002",
    "MCP_PORT": "18020",
    "AI_SUITE_HOST": "127.0.0.2",
    "LOG_LEVEL": "debug",
    "AI_SUITE_LOG_LEVEL": "debug",
}
JUNK = "junk-from-the-caller"


def hostile_environment(junk_data: Path) -> dict[str, str]:
    """... and every other variable any settings class reads, set to junk that no setting
    accepts as it is: a variable that reached a test would change or break it."""
    env = {k: v for k, v in os.environ.items() if k != NO_ENV_FILE_VARIABLE}
    env.update({name: JUNK for name in platform_variables()})
    env.update(REALISTIC)
    env["AI_SUITE_DATA_DIR"] = str(junk_data)
    env.pop(NO_ENV_FILE_VARIABLE)  # the caller did not turn the .env files off
    return env


def test_the_unit_tests_pass_under_a_hostile_environment(tmp_path: Path) -> None:
    junk_data = tmp_path / "junk-data"
    junk_data.mkdir()
    (junk_data / ".env").write_text("GATEWAY_PORT=1\nRAG_CHUNK_SIZE=junk\nMCP_PORT=-5\n")
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    (cwd / ".env").write_text("AI_SUITE_HOST=203.0.113.9\nAI_SUITE_LOG_LEVEL=loud\n")
    argv = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml")]
    argv += ["--rootdir", str(ROOT), "-p", "no:cacheprovider", "-p", "no:randomly"]
    argv += ["-n", "0", "-q", "-m", "unit", *(str(ROOT / path) for path in SUBSET)]
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=hostile_environment(junk_data),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    summary = result.stdout.strip().splitlines()[-1:] or [result.stderr[-2000:]]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in summary[0], summary
    assert "failed" not in summary[0], summary
