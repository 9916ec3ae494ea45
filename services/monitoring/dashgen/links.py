"""Where dashboard links point: runbooks (absolute, from one base URL) and alert panels.

Grafana resolves ``/d/<uid>`` against itself, so links between dashboards need no base;
runbooks live in the repository's docs, which Grafana cannot serve, so their links are
absolute. The base comes from ``MONITORING_RUNBOOK_BASE_URL`` (the name the alert rules'
``runbook_url`` should share), read when the dashboards are generated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

RUNBOOK_BASE_ENV = "MONITORING_RUNBOOK_BASE_URL"
# pyproject.toml names no public repository; this is the default until it does, and
# `MONITORING_RUNBOOK_BASE_URL=... make dashboards` points the links elsewhere.
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/local-ai-suite/local-ai-suite/blob/main"
MONITORING_GUIDE = "docs/ops/MONITORING_GUIDE.md"
OBSERVABILITY_DOC = "docs/observability.md"


def runbook_base_url(environ: Mapping[str, str] | None = None) -> str:
    """The base URL runbook links start with, without a trailing slash."""
    value = (os.environ if environ is None else environ).get(RUNBOOK_BASE_ENV, "").strip()
    base = value or DEFAULT_RUNBOOK_BASE_URL
    if not base.startswith(("https://", "http://")):
        raise ValueError(
            f"{RUNBOOK_BASE_ENV}={base!r}: runbook links must be absolute http(s) URLs"
        )
    return base.rstrip("/")


def doc_url(base: str, path: str, anchor: str = "") -> str:
    return f"{base}/{path}" + (f"#{anchor}" if anchor else "")


def alert_runbook_url(base: str, alert: str) -> str:
    """The runbook section of ``alert``: docs/ops/MONITORING_GUIDE.md, anchor = lowercase name
    (the convention of docker/prometheus/rules/alerts.yml)."""
    return doc_url(base, MONITORING_GUIDE, alert.lower())


def panel_path(dashboard_uid: str, panel_id: int) -> str:
    """Grafana-relative link to one panel, for an alert's ``dashboard_url`` annotation."""
    return f"/d/{dashboard_uid}?viewPanel={panel_id}"


@dataclass(frozen=True)
class AlertPanel:
    alert: str
    dashboard_uid: str
    panel_id: int


# The panel that shows what each alert of docker/prometheus/rules/alerts.yml measures. The
# panel gets a link to the alert's runbook; the alert can link back with panel_path().
ALERT_PANELS: tuple[AlertPanel, ...] = (
    AlertPanel("ServiceDown", "ai-suite-overview", 2),
    AlertPanel("High5xxRatio", "ai-suite-overview", 5),
    AlertPanel("HighLatencyP95", "ai-suite-overview", 6),
    AlertPanel("LlmUpstreamFailing", "ai-suite-gateway", 7),
    AlertPanel("LlmCircuitOpen", "ai-suite-gateway", 8),
    AlertPanel("RbacDenialSpike", "ai-suite-security", 5),
    AlertPanel("AuthFailureSpike", "ai-suite-security", 4),
    AlertPanel("AuditWriteFailures", "ai-suite-security", 8),
    AlertPanel("AuditArchiveFailing", "ai-suite-security", 21),
    AlertPanel("ApprovalBacklog", "ai-suite-security", 10),
    AlertPanel("ApprovalsExpiring", "ai-suite-security", 10),
    AlertPanel("ApprovalsExpired", "ai-suite-security", 11),
    AlertPanel("VectorSearchErrors", "ai-suite-rag", 6),
)


def alerts_for(dashboard_uid: str, panel_id: int) -> list[str]:
    return [
        a.alert for a in ALERT_PANELS if (a.dashboard_uid, a.panel_id) == (dashboard_uid, panel_id)
    ]
