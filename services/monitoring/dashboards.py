"""Grafana dashboards as file provisioning loads them: bare dashboard models.

The HTTP API wraps a dashboard as ``{"dashboard": {...}, "overwrite": ...}``; file
provisioning wants the model itself and ignores or rejects the wrapped form (the
predecessor shipped wrapped files that never loaded). Panels must be current types, and
every datasource reference must be a uid that provisioning creates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.core.yamlfile import safe_load

PANEL_TYPES = frozenset({"timeseries", "stat", "gauge", "table", "bargauge", "logs", "text"})
CONTAINER_TYPES = frozenset({"row"})
DEPRECATED_TYPES = frozenset({"graph", "singlestat", "table-old", "grafana-piechart-panel"})
REQUIRED_KEYS = ("title", "uid", "panels", "schemaVersion")
_RANGE_VARIABLES = ("$__rate_interval", "$__interval", "$__range")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    panel_id: int
    datasource_uid: str
    datasource_type: str
    ref_id: str
    expr: str

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} [{self.ref_id}]"


def load_dashboard(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a dashboard is a JSON object")
    return data


def provisioned_datasources(path: Path) -> dict[str, str]:
    """uid -> type of every datasource in a provisioning file."""
    data = safe_load(path.read_text()) or {}
    return {str(d["uid"]): str(d["type"]) for d in data.get("datasources") or [] if "uid" in d}


def iter_panels(model: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in model.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def _datasource(ref: Any) -> tuple[str, str] | None:
    if isinstance(ref, dict) and "uid" in ref:
        return str(ref["uid"]), str(ref.get("type", ""))
    return None


def panel_queries(model: Mapping[str, Any]) -> list[PanelQuery]:
    """Each query of each panel, with the datasource it runs against."""
    queries = []
    for panel in iter_panels(model):
        panel_ds = _datasource(panel.get("datasource"))
        for target in panel.get("targets") or []:
            uid, kind = _datasource(target.get("datasource")) or panel_ds or ("", "")
            queries.append(
                PanelQuery(
                    dashboard=str(model.get("title", "?")),
                    panel=str(panel.get("title", "?")),
                    panel_id=int(panel.get("id", 0)),
                    datasource_uid=uid,
                    datasource_type=kind,
                    ref_id=str(target.get("refId", "?")),
                    expr=str(target.get("expr", "")),
                )
            )
    return queries


def dashboard_problems(model: Mapping[str, Any], datasources: Mapping[str, str]) -> list[str]:
    """Why file provisioning would reject or mis-render ``model`` (empty when fine)."""
    problems = []
    if "dashboard" in model:
        problems.append("wrapped in {'dashboard': ...} (HTTP API form); save the bare model")
        return problems
    problems += [f"missing key {key!r}" for key in REQUIRED_KEYS if key not in model]
    if model.get("id") not in (None,):
        problems.append("has a numeric 'id': provisioning assigns ids, set it to null")
    for name in ("__inputs", "__requires"):
        if name in model:
            problems.append(f"has {name!r} (export-for-sharing form); save the bare model")
    ids: set[int] = set()
    for panel in iter_panels(model):
        title = panel.get("title", "?")
        kind = panel.get("type")
        if kind in DEPRECATED_TYPES:
            problems.append(f"panel {title!r}: deprecated type {kind!r}")
        elif kind not in PANEL_TYPES | CONTAINER_TYPES:
            problems.append(f"panel {title!r}: type {kind!r} is not one of {sorted(PANEL_TYPES)}")
        if panel.get("id") in ids:
            problems.append(f"panel {title!r}: duplicate id {panel.get('id')}")
        ids.add(panel.get("id"))
        if kind not in CONTAINER_TYPES and "gridPos" not in panel:
            problems.append(f"panel {title!r}: no gridPos")
        refs = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets") or []]
        problems += _datasource_problems(f"panel {title!r}", refs, datasources, kind)
    for variable in (model.get("templating") or {}).get("list") or []:
        if variable.get("type") == "query":
            problems += _datasource_problems(
                f"variable {variable.get('name')!r}",
                [variable.get("datasource")],
                datasources,
                "query",
            )
    return problems


def _datasource_problems(
    where: str, refs: list[Any], datasources: Mapping[str, str], kind: Any
) -> list[str]:
    problems = []
    for ref in refs:
        if ref is None:
            continue
        if isinstance(ref, str):
            problems.append(f"{where}: datasource {ref!r} by name; reference it by uid")
            continue
        found = _datasource(ref)
        if found is None:
            problems.append(f"{where}: datasource reference without uid: {ref!r}")
            continue
        uid, ds_type = found
        if uid not in datasources:
            problems.append(f"{where}: datasource uid {uid!r} is not provisioned")
        elif ds_type and ds_type != datasources[uid]:
            problems.append(f"{where}: datasource {uid!r} is {datasources[uid]}, not {ds_type}")
    if kind not in ("text", "row") and not any(r is not None for r in refs):
        problems.append(f"{where}: no datasource")
    return problems


def expand_variables(expr: str, values: Mapping[str, str] | None = None) -> str:
    """A panel query with Grafana's variables replaced, to run it against Prometheus.

    Range variables become ``1m`` unless given; ``$name`` and ``${name}`` take ``values``
    (default ``.*``, for the regex matchers the dashboards use).
    """
    values = dict(values or {})
    for name in _RANGE_VARIABLES:
        expr = expr.replace(name, values.get(name, "1m"))
    return re.sub(
        r"\$\{(\w+)(?::\w+)?\}|\$(\w+)",
        lambda m: values.get(m.group(1) or m.group(2), ".*"),
        expr,
    )
