"""The .env files: real environment > ./.env > $AI_SUITE_DATA_DIR/.env > defaults
(docs/configuration.md, "Where values come from")."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core.settings import NO_ENV_FILE_VARIABLE, CoreSettings, env_files
from services.core.settings_errors import InvalidSettings


@pytest.fixture
def checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A working directory, with .env files read (the suite turns them off: conftest.py)."""
    monkeypatch.delenv(NO_ENV_FILE_VARIABLE)
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def _data_dir(root: Path, text: str) -> Path:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / ".env").write_text(text)
    return data


def test_the_suite_reads_no_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("GATEWAY_PORT=1\n")
    assert env_files() == ()
    assert CoreSettings().gateway_port == 8000


def test_without_files_the_defaults(checkout: Path) -> None:
    assert env_files() == ()
    assert CoreSettings().gateway_port == 8000


def test_the_data_directory_env_file_beats_the_defaults(checkout: Path) -> None:
    _data_dir(checkout, "GATEWAY_PORT=18100\nRAG_PORT=18102\n")  # ./data: the default dir
    settings = CoreSettings()
    assert (settings.gateway_port, settings.rag_port, settings.mcp_port) == (18100, 18102, 8020)


def test_the_working_directory_env_file_beats_the_data_directory_one(checkout: Path) -> None:
    _data_dir(checkout, "GATEWAY_PORT=18100\nRAG_PORT=18102\n")
    (checkout / ".env").write_text("# the checkout's own\nGATEWAY_PORT='18200'\n")
    settings = CoreSettings()
    assert (settings.gateway_port, settings.rag_port) == (18200, 18102)


def test_the_real_environment_beats_both_files(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _data_dir(checkout, "GATEWAY_PORT=18100\n")
    (checkout / ".env").write_text("GATEWAY_PORT=18200\n")
    monkeypatch.setenv("GATEWAY_PORT", "18300")
    assert CoreSettings().gateway_port == 18300


def test_a_field_given_by_name_beats_everything(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (checkout / ".env").write_text("GATEWAY_PORT=18200\n")
    monkeypatch.setenv("GATEWAY_PORT", "18300")
    assert CoreSettings(gateway_port=18400).gateway_port == 18400


def test_the_data_directory_named_in_dot_env_is_the_one_whose_env_file_is_read(
    checkout: Path, tmp_path: Path
) -> None:
    elsewhere = _data_dir(tmp_path / "elsewhere", "MCP_PORT=18120\n")
    _data_dir(checkout, "MCP_PORT=1\n")  # ./data is not the data directory here
    (checkout / ".env").write_text(f"AI_SUITE_DATA_DIR={elsewhere}\n")
    settings = CoreSettings()
    assert settings.data_dir == elsewhere.resolve()
    assert settings.mcp_port == 18120


def test_the_data_directory_from_the_environment_or_by_name(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = _data_dir(tmp_path / "from-env", "MCP_PORT=18121\n")
    by_name = _data_dir(tmp_path / "by-name", "MCP_PORT=18122\n")
    monkeypatch.setenv("AI_SUITE_DATA_DIR", str(from_env))
    assert CoreSettings().mcp_port == 18121
    assert CoreSettings(data_dir=by_name).mcp_port == 18122


def test_no_env_file_turns_both_files_off(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _data_dir(checkout, "GATEWAY_PORT=18100\n")
    (checkout / ".env").write_text("RAG_PORT=18202\n")
    monkeypatch.setenv(NO_ENV_FILE_VARIABLE, "1")
    settings = CoreSettings()
    assert (settings.gateway_port, settings.rag_port) == (8000, 8002)


def test_unrelated_lines_in_a_shared_env_file_are_ignored(checkout: Path) -> None:
    (checkout / ".env").write_text("POSTGRES_PASSWORD=x\nHOST=0.0.0.0\nGATEWAY_PORT=18200\n")
    settings = CoreSettings()
    assert (settings.gateway_port, settings.host) == (18200, "127.0.0.1")


def test_a_bad_value_from_a_file_names_the_file(checkout: Path) -> None:
    (checkout / ".env").write_text("GATEWAY_PORT=abc\n")
    with pytest.raises(InvalidSettings) as info:
        CoreSettings()
    assert info.value.lines == [
        "GATEWAY_PORT='abc' is not valid: expected an integer (0-65535)"
        f" (from {(checkout / '.env').resolve()})"
    ]
