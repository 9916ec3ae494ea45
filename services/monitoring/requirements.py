"""What the monitoring must contain, checked against the configuration files.

Two pinned lists live next to the files they constrain: the alerts the platform must have
(``docker/prometheus/required_alerts.yml``) and each Alertmanager route's notification timing
(``docker/alertmanager/route_timings.yml``). A rule or route edited by mistake, or an alert
deleted together with its tests, is then reported by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from services.core.yamlfile import safe_load
from services.monitoring.durations import parse_duration

ROUTE_TIMINGS = ("group_wait", "group_interval", "repeat_interval")
# Alertmanager's own defaults, for a root route that leaves a timing out.
ALERTMANAGER_DEFAULTS = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}


def alert_names(rule_files: Iterable[Path]) -> list[str]:
    return [
        str(rule["alert"])
        for path in rule_files
        for group in (safe_load(path.read_text()) or {}).get("groups") or []
        for rule in group.get("rules") or []
        if "alert" in rule
    ]


def required_alerts(path: Path) -> dict[str, str]:
    """alertname -> why the platform must have it."""
    return {str(k): str(v) for k, v in (safe_load(path.read_text())["required"]).items()}


def missing_required_alerts(required: Mapping[str, str], alerts: Iterable[str]) -> list[str]:
    present = set(alerts)
    return [
        f"required alert {name} is missing from the rules ({why})"
        for name, why in required.items()
        if name not in present
    ]


def _effective_routes(
    route: Mapping[str, Any], inherited: Mapping[str, str]
) -> Iterator[tuple[str, dict[str, str]]]:
    timings = {key: str(route.get(key, inherited[key])) for key in ROUTE_TIMINGS}
    yield str(route.get("receiver", "")), timings
    for child in route.get("routes") or []:
        yield from _effective_routes(child, timings)


def effective_route_timings(config: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """receiver -> the timings its route really uses (children inherit from parents)."""
    return dict(_effective_routes(config["route"], ALERTMANAGER_DEFAULTS))


def route_timing_problems(
    config: Mapping[str, Any], expected: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """One message per route and timing that differs from ``expected`` (compared as durations,
    so ``60s`` equals ``1m``), or per pinned route that no longer exists."""
    actual = effective_route_timings(config)
    problems = []
    for receiver, timings in expected.items():
        if receiver not in actual:
            problems.append(f"route {receiver}: missing from the Alertmanager config")
            continue
        for key, want in timings.items():
            got = actual[receiver][key]
            if parse_duration(got) != parse_duration(want):
                problems.append(f"route {receiver}: {key} is {got}, must be {want}")
    return problems


def pinned_route_timings(path: Path) -> dict[str, dict[str, str]]:
    routes = safe_load(path.read_text())["routes"]
    return {str(name): {k: str(v) for k, v in t.items()} for name, t in routes.items()}
