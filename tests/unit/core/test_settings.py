"""CoreSettings: defaults, environment overrides and clear validation errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.core.settings import LOOPBACK, CoreSettings
from services.core.settings_errors import InvalidSettings

# Variables the settings read, plus generic names they must NOT read.
_NAMES = {
    "AI_SUITE_DATA_DIR",
    "AI_SUITE_HOST",
    "AI_SUITE_LOG_LEVEL",
    "GATEWAY_PORT",
    "RAG_PORT",
    "MCP_PORT",
    "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT",
    "HOST",
    "LOG_LEVEL",
    "DATA_DIR",
}

PORT_FIELDS = {
    "GATEWAY_PORT": "gateway_port",
    "RAG_PORT": "rag_port",
    "MCP_PORT": "mcp_port",
    "PROMETHEUS_PORT": "prometheus_port",
    "ALERTMANAGER_PORT": "alertmanager_port",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No inherited settings, and a known working directory for the relative default."""
    for name in list(os.environ):
        if name.upper() in _NAMES or name.upper().startswith("AI_SUITE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults(tmp_path: Path) -> None:
    settings = CoreSettings()
    assert settings.host == LOOPBACK == "127.0.0.1"
    assert settings.log_level == "INFO"
    assert settings.gateway_port == 8000
    assert settings.rag_port == 8002
    assert settings.mcp_port == 8020
    assert settings.prometheus_port == 9090
    assert settings.alertmanager_port == 9093


def test_default_data_dir_is_absolute_data_under_cwd(tmp_path: Path) -> None:
    settings = CoreSettings()
    assert settings.data_dir.is_absolute()
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.security_db_path == settings.data_dir / "security.db"


@pytest.mark.parametrize(
    ("env", "value", "field", "expected"),
    [
        ("GATEWAY_PORT", "18000", "gateway_port", 18000),
        ("RAG_PORT", "18002", "rag_port", 18002),
        ("MCP_PORT", "18020", "mcp_port", 18020),
        ("PROMETHEUS_PORT", "19090", "prometheus_port", 19090),
        ("ALERTMANAGER_PORT", "19093", "alertmanager_port", 19093),
        ("AI_SUITE_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("AI_SUITE_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("AI_SUITE_LOG_LEVEL", "Warning", "log_level", "WARNING"),
        ("gateway_port", "18001", "gateway_port", 18001),  # env names are case-insensitive
    ],
)
def test_env_overrides(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(env, value)
    assert getattr(CoreSettings(), field) == expected


def test_data_dir_from_env_is_resolved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AI_SUITE_DATA_DIR", str(tmp_path / "x" / ".." / "state"))
    assert CoreSettings().data_dir == (tmp_path / "state").resolve()

    monkeypatch.setenv("AI_SUITE_DATA_DIR", "relative/dir")
    assert CoreSettings().data_dir == (tmp_path / "relative" / "dir").resolve()


def test_data_dir_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AI_SUITE_DATA_DIR", "~/suite")
    assert CoreSettings().data_dir == (tmp_path / "home" / "suite").resolve()


@pytest.mark.parametrize(
    ("env", "value"), [("HOST", "0.0.0.0"), ("LOG_LEVEL", "DEBUG"), ("DATA_DIR", "/elsewhere")]
)
def test_generic_variables_of_other_programs_are_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: str, value: str
) -> None:
    # HOST=0.0.0.0 set for some other tool must not expose the services on every interface.
    monkeypatch.setenv(env, value)
    settings = CoreSettings()
    assert settings.host == "127.0.0.1"
    assert settings.log_level == "INFO"
    assert settings.data_dir == (tmp_path / "data").resolve()


def test_keyword_arguments_by_field_name_win_over_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "18000")
    settings = CoreSettings(gateway_port=1234, data_dir=tmp_path / "d", host="::1")
    assert settings.gateway_port == 1234
    assert settings.data_dir == (tmp_path / "d").resolve()
    assert settings.host == "::1"


@pytest.mark.parametrize("env", sorted(PORT_FIELDS))
@pytest.mark.parametrize("value", ["70000", "65536", "-1"])
def test_out_of_range_port_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(InvalidSettings) as info:
        CoreSettings()
    assert info.value.lines == [f"{env}='{value}' is not valid: expected an integer (0-65535)"]


def test_non_numeric_port_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_PORT", "eighty")
    with pytest.raises(InvalidSettings) as info:
        CoreSettings()
    assert info.value.lines == ["RAG_PORT='eighty' is not valid: expected an integer (0-65535)"]


@pytest.mark.parametrize("port", [0, 65535])
def test_port_bounds_are_inclusive(port: int) -> None:
    assert CoreSettings(mcp_port=port).mcp_port == port


def test_invalid_log_level_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SUITE_LOG_LEVEL", "LOUD")
    with pytest.raises(InvalidSettings) as info:
        CoreSettings()
    assert info.value.lines == [
        "AI_SUITE_LOG_LEVEL='LOUD' is not valid: expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
    ]
    assert isinstance(info.value.__cause__, ValidationError)  # pydantic's report is kept


def test_settings_are_frozen() -> None:
    settings = CoreSettings()
    with pytest.raises(ValidationError):
        settings.gateway_port = 1  # type: ignore[misc]


def test_service_url() -> None:
    settings = CoreSettings(host="127.0.0.1")
    assert settings.service_url(8002) == "http://127.0.0.1:8002"
