"""Dashboards -> the JSON text Grafana's file provisioning loads, and the comparison with
what is committed in docker/grafana/dashboards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from services.monitoring.dashgen.boards import DASHBOARDS, Board
from services.monitoring.dashgen.links import RUNBOOK_BASE_ENV, runbook_base_url
from services.monitoring.dashgen.slo import RULES_DIR, slo_board, slo_records

DASHBOARD_DIR = Path(__file__).resolve().parents[3] / "docker" / "grafana" / "dashboards"
REGENERATE = "make dashboards"
# The SDK writes schemaVersion 36; the hand-written dashboards declared 39 (Grafana 10.x+),
# and Grafana 12 migrates anything older on every load. Keep 39 so nothing migrates.
SCHEMA_VERSION = 39


def boards(base_url: str, rules_dir: Path = RULES_DIR) -> dict[str, Board]:
    """File name (without .json) -> dashboard: the fixed five, plus the error-budget one
    when the rule files have SLO recording rules."""
    found = {name: make(base_url) for name, make in DASHBOARDS.items()}
    slo = slo_board(base_url, slo_records(rules_dir))
    if slo is not None:
        found["slo"] = slo
    return found


def to_json(board: Board) -> dict[str, Any]:
    """A dashboard as a plain JSON object (the SDK model through its own encoder)."""
    model = board.builder.build()
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    data["schemaVersion"] = SCHEMA_VERSION
    return data


def build(name: str, base_url: str, rules_dir: Path = RULES_DIR) -> dict[str, Any]:
    return to_json(boards(base_url, rules_dir)[name])


def render(board: Board) -> str:
    # sort_keys: the SDK's key order follows its dataclass fields, which a new SDK release
    # may reorder; sorted keys keep the committed files stable across releases.
    return json.dumps(to_json(board), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all(base_url: str | None = None, rules_dir: Path = RULES_DIR) -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    # An explicit base goes through the same checks as the environment's.
    base = (
        runbook_base_url() if base_url is None else runbook_base_url({RUNBOOK_BASE_ENV: base_url})
    )
    return {f"{name}.json": render(board) for name, board in boards(base, rules_dir).items()}


@dataclass(frozen=True)
class Drift:
    file: str
    reason: str


def drift(directory: Path = DASHBOARD_DIR, base_url: str | None = None) -> list[Drift]:
    """Where the committed files differ from what the generator writes (empty when equal)."""
    wanted = render_all(base_url)
    found = []
    for name, text in wanted.items():
        path = directory / name
        if not path.exists():
            found.append(Drift(name, "missing"))
        elif path.read_text(encoding="utf-8") != text:
            found.append(Drift(name, "differs from the generator's output"))
    for path in sorted(directory.glob("*.json")):
        if path.name not in wanted:
            found.append(Drift(path.name, "not produced by the generator (add it to boards.py)"))
    return found


def write_all(directory: Path = DASHBOARD_DIR, base_url: str | None = None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all(base_url).items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
