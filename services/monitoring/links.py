"""Absolute runbook and dashboard links on every alert, from configurable base URLs.

The rules in docker/prometheus/rules keep repo-relative ``runbook_url`` annotations (they
are the guide's anchors, checked by the tests). Rendering (config.render_prometheus) makes
them absolute from ``MONITORING_RUNBOOK_BASE_URL`` and adds ``dashboard_url`` to the
alert's dashboard from ``GRAFANA_URL``, so a link in Slack or e-mail can be clicked.
Dashboards are addressed by their uid (``/d/<uid>``), which stays stable when a
dashboard is regenerated or renamed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The dashboard an alert's group points at; ALERT_DASHBOARDS overrides single alerts.
GROUP_DASHBOARDS: Mapping[str, str] = {
    "ai_suite_availability_alerts": "ai-suite-overview",
    "ai_suite_llm_alerts": "ai-suite-gateway",
    "ai_suite_security_alerts": "ai-suite-security",
    "ai_suite_approvals_alerts": "ai-suite-mcp",
    "ai_suite_rag_alerts": "ai-suite-rag",
    "ai_suite_slo_alerts": "ai-suite-slo",  # the error-budget dashboard (dashgen/slo.py)
    "ai_suite_meta_alerts": "ai-suite-overview",
}
ALERT_DASHBOARDS: Mapping[str, str] = {}


class LinkError(ValueError):
    """An alert has no dashboard, or a base URL is not absolute."""


def _base(url: str, what: str) -> str:
    if not url.startswith(("http://", "https://", "file://")):
        raise LinkError(f"{what} must be an absolute http(s) or file URL, got {url!r}")
    return url.rstrip("/")


def dashboard_uid(group: str, alert: str) -> str:
    uid = ALERT_DASHBOARDS.get(alert) or GROUP_DASHBOARDS.get(group)
    if uid is None:
        raise LinkError(
            f"alert {alert} (group {group}) has no dashboard: add the group to"
            " GROUP_DASHBOARDS in services/monitoring/links.py"
        )
    return uid


def add_links(rules: dict[str, Any], *, runbook_base: str, grafana_url: str) -> dict[str, Any]:
    """Alert rules (in place) with an absolute runbook_url and a dashboard_url."""
    runbooks, grafana = _base(runbook_base, "the runbook base URL"), _base(
        grafana_url, "GRAFANA_URL"
    )
    for group in rules.get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" not in rule:
                continue
            annotations = rule.setdefault("annotations", {})
            runbook = str(annotations.get("runbook_url", ""))
            if runbook and "://" not in runbook:
                annotations["runbook_url"] = f"{runbooks}/{runbook.lstrip('/')}"
            uid = dashboard_uid(str(group.get("name")), str(rule["alert"]))
            annotations["dashboard_url"] = f"{grafana}/d/{uid}"
    return rules
