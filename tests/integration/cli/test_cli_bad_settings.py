"""A bad setting stops `ai-suite` and every service with one line and no traceback; the
.env files are read by the real programs (docs/configuration.md). Real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.core.settings import NO_ENV_FILE_VARIABLE

AI_SUITE = str(Path(sys.executable).parent / "ai-suite")
REPO = Path(__file__).resolve().parents[3]


def _run(
    argv: list[str], cwd: Path, *, env_files: bool = False, **variables: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **variables}
    if env_files:
        env.pop(NO_ENV_FILE_VARIABLE, None)
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_ai_suite_up_with_a_bad_port_prints_one_line_and_starts_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = _run([AI_SUITE, "up"], tmp_path, AI_SUITE_DATA_DIR=str(data), GATEWAY_PORT="abc")
    assert result.returncode == 2
    assert (
        result.stderr
        == "ai-suite: GATEWAY_PORT='abc' is not valid: expected an integer (0-65535)\n"
    )
    assert result.stdout == ""
    assert not data.exists()


def test_a_bad_variable_of_one_service_stops_up_before_the_first_key_is_made(
    tmp_path: Path,
) -> None:
    # Caught before the data directory, the admin key or any service: a key printed by a
    # start that then fails would be easy to miss, and it is shown only once.
    data = tmp_path / "data"
    result = _run([AI_SUITE, "up"], tmp_path, AI_SUITE_DATA_DIR=str(data), RAG_CHUNK_SIZE="big")
    assert result.returncode == 2
    assert result.stderr == (
        "ai-suite: RAG_CHUNK_SIZE='big' is not valid: expected an integer (16-8192)\n"
    )
    assert result.stdout == ""
    assert not data.exists()


@pytest.mark.parametrize(
    ("module", "variable", "value", "line"),
    [
        (
            "services.gateway",
            "GATEWAY_PORT",
            "abc",
            "gateway: GATEWAY_PORT='abc' is not valid: expected an integer (0-65535)",
        ),
        (
            "services.mcp",
            "MCP_COMMAND_TIMEOUT",
            "0",
            "mcp: MCP_COMMAND_TIMEOUT='0' is not valid: expected a number (above 0)",
        ),
        (
            "services.rag",
            "RAG_RETRIEVAL",
            "sparse",
            "rag: RAG_RETRIEVAL='sparse' is not valid: expected one of dense, hybrid",
        ),
    ],
)
def test_each_service_entry_point_prints_one_line(
    tmp_path: Path, module: str, variable: str, value: str, line: str
) -> None:
    result = _run(
        [sys.executable, "-m", module],
        tmp_path,
        AI_SUITE_DATA_DIR=str(tmp_path / "data"),
        **{variable: value},
    )
    assert result.returncode == 2
    assert result.stderr == line + "\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_a_secret_is_never_echoed(tmp_path: Path) -> None:
    secret = "hooks.slack.com/services/T000/B000/XXXXSECRET"
    result = _run(
        [AI_SUITE, "alerts", "render-config", "--out", str(tmp_path / "am")],
        tmp_path,
        ALERTS_SLACK_WEBHOOK_URL=secret,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "ai-suite: ALERTS_SLACK_WEBHOOK_URL (value hidden) is not valid:"
        " expected an http:// or https:// URL\n"
    )
    assert "SECRET" not in result.stdout + result.stderr


def test_the_checkout_env_file_is_read_and_a_bad_value_in_it_named_with_the_file(
    tmp_path: Path,
) -> None:
    chosen = tmp_path / "chosen-data"
    (tmp_path / ".env").write_text(f"# the checkout's settings\nAI_SUITE_DATA_DIR={chosen}\n")
    result = _run([AI_SUITE, "db", "migrate"], tmp_path, env_files=True)
    assert result.returncode == 0, result.stderr
    assert (chosen / "security.db").is_file()

    # The data directory's own .env is read too, below ./.env.
    (chosen / ".env").write_text("AI_SUITE_LOG_LEVEL=chatty\n")
    result = _run([AI_SUITE, "db", "migrate"], tmp_path, env_files=True)
    assert result.returncode == 2
    assert result.stderr == (
        "ai-suite: AI_SUITE_LOG_LEVEL='chatty' is not valid: expected DEBUG, INFO, WARNING,"
        f" ERROR or CRITICAL (from {chosen / '.env'})\n"
    )

    # The real environment wins over both files.
    result = _run([AI_SUITE, "db", "migrate"], tmp_path, env_files=True, AI_SUITE_LOG_LEVEL="info")
    assert result.returncode == 0, result.stderr


def test_the_suite_switch_turns_the_files_off(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GATEWAY_PORT=abc\n")
    data = tmp_path / "data"
    result = _run([AI_SUITE, "db", "migrate"], tmp_path, AI_SUITE_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr  # NO_ENV_FILE is set for the whole suite
