"""MCP settings from the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.core.settings_errors import InvalidSettings
from services.mcp.settings import DEFAULT_ALLOWLIST, McpSettings, split_list


def test_defaults(tmp_path: Path) -> None:
    settings = McpSettings(data_dir=tmp_path)
    assert settings.workspace_roots == [tmp_path.resolve() / "workspace"]
    assert settings.command_allowlist == frozenset(DEFAULT_ALLOWLIST)
    assert settings.rag_url == f"http://127.0.0.1:{settings.rag_port}"
    assert settings.port == settings.mcp_port
    assert settings.allow_self_approval is False


def test_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MCP_WORKSPACE_ROOTS", f"{tmp_path}/a,{tmp_path}/b{os.pathsep}{tmp_path}/c")
    monkeypatch.setenv("MCP_COMMAND_ALLOWLIST", "ls, echo")
    monkeypatch.setenv("MCP_ALLOW_SELF_APPROVAL", "true")
    monkeypatch.setenv("RAG_URL", "http://rag:8002/")
    monkeypatch.setenv("MCP_RATE_LIMIT_PER_MINUTE", "7")
    settings = McpSettings(data_dir=tmp_path)
    assert [p.name for p in settings.workspace_roots] == ["a", "b", "c"]
    assert settings.command_allowlist == {"ls", "echo"}
    assert settings.allow_self_approval is True
    assert settings.rag_url == "http://rag:8002"
    assert settings.rate_limit_per_minute == 7


def test_split_list_accepts_lists() -> None:
    assert split_list(["a", " ", "b"]) == ["a", "b"]
    assert split_list(None) == []
    assert McpSettings(command_allowlist=["ls", "cat"]).command_allowlist == {"ls", "cat"}


def test_fairness_limits_name_their_settings(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MCP_MAX_CONCURRENT_PER_KEY", "3")
    limits = McpSettings(data_dir=tmp_path, rate_limit_per_minute=7).fairness_limits
    assert (limits.rate_per_minute, limits.max_concurrent) == (7, 3)
    assert limits.rate_setting == "MCP_RATE_LIMIT_PER_MINUTE"
    assert limits.concurrency_setting == "MCP_MAX_CONCURRENT_PER_KEY"


def test_bare_field_names_of_other_programs_are_not_read(monkeypatch, tmp_path: Path) -> None:
    """Only the documented MCP_* names configure the server; COMMAND_TIMEOUT set for
    some other program must not."""
    monkeypatch.setenv("COMMAND_TIMEOUT", "1")
    monkeypatch.setenv("TOOL_TIMEOUT", "1")
    settings = McpSettings(data_dir=tmp_path)
    assert (settings.command_timeout, settings.tool_timeout) == (30.0, 60.0)


def test_smtp_notifications_need_a_sender_and_recipients(monkeypatch) -> None:
    for name in ("MCP_APPROVAL_SMTP_FROM", "MCP_APPROVAL_SMTP_TO", "MCP_APPROVAL_SMTP_STARTTLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MCP_APPROVAL_SMTP_HOST", "mail.example.org")
    with pytest.raises(InvalidSettings, match="set MCP_APPROVAL_SMTP_FROM and"):
        McpSettings()
    monkeypatch.setenv("MCP_APPROVAL_SMTP_FROM", "ai@example.org")
    monkeypatch.setenv("MCP_APPROVAL_SMTP_TO", "a@example.org, b@example.org,")
    settings = McpSettings()
    assert settings.approval_smtp_recipients == ["a@example.org", "b@example.org"]
    assert settings.approval_smtp_starttls is True
