"""docs/configuration.md is exactly what services/cli/configdoc.py writes from the settings
classes, and every variable they read is in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.cli.configdoc import (
    DOC_PATH,
    REGENERATE,
    SECTIONS,
    main,
    own_fields,
    platform_variables,
    render,
)
from services.core.settings_errors import env_names


def test_committed_reference_matches_the_settings_classes() -> None:
    committed = DOC_PATH.read_text(encoding="utf-8")
    assert committed == render(), f"docs/configuration.md is out of date: run `{REGENERATE}`"


def test_a_hand_edit_is_reported_with_the_command_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "configuration.md"
    assert main(["--out", str(out)]) == 0
    assert main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text().replace("`8000`", "`8080`"))
    assert main(["--check", "--out", str(out)]) == 1
    assert f"run `{REGENERATE}`" in capsys.readouterr().err


def test_every_variable_has_a_row_with_type_default_and_meaning() -> None:
    text = render()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([A-Z0-9_]+)` \|.*$", text, re.M)}
    for section in SECTIONS:
        for name, field in section.settings.model_fields.items():
            variable = env_names(name, field)[0]
            assert variable in rows, f"{section.settings.__name__}.{name}"
            assert field.description, f"{variable} has no description="
    assert "| `GATEWAY_PORT` | integer (0-65535) | `8000` | Port of the API gateway. |" in text
    assert "| `RAG_RETRIEVAL` | `dense` \\| `hybrid` | `dense` |" in text
    assert "| `INFERENCE_API_KEY` | secret text | unset |" in text


def test_a_shared_variable_names_every_reader() -> None:
    rag_url = [line for line in render().splitlines() if line.startswith("| `RAG_URL`")]
    assert len(rag_url) == 2  # the gateway forwards to it, the MCP server's rag_search calls it
    assert "Also read by: MCP tool server." in rag_url[0]
    assert "Also read by: Gateway." in rag_url[1]


def test_a_field_without_description_stops_the_generator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    field = own_fields(SECTIONS[1].settings)["upstream_retries"]
    monkeypatch.setattr(field, "description", None)
    out = tmp_path / "configuration.md"
    assert main(["--out", str(out)]) == 1
    assert not out.exists()
    assert capsys.readouterr().err.startswith(
        "configdoc: GatewaySettings.upstream_retries (UPSTREAM_RETRIES) has no description=;"
    )


def test_platform_variables_include_every_name_pydantic_settings_reads() -> None:
    names = platform_variables()
    # documented names, extra accepted names, and AI_SUITE_<field> (populate_by_name)
    assert {"GATEWAY_PORT", "AI_SUITE_HOST", "QDRANT_URL", "ALERTS_EMAIL_TO"} <= names
    assert {"WORKSPACE_ROOTS", "AI_SUITE_GATEWAY_PORT", "AI_SUITE_API_KEY"} <= names
    assert "LOG_LEVEL" not in names  # a generic name the platform ignores
