"""The error-budget dashboard, built from the SLO recording rules when they exist.

The SLO rules are generated elsewhere (the SLO file -> docker/prometheus/rules); this module
only reads their names. The naming it assumes, per SLO, with labels ``service`` and ``slo``
(e.g. ``availability``, ``latency``):

    slo:objective:ratio                 the objective, e.g. 0.99
    slo:sli_error:ratio_rate<window>    the error ratio over <window> (5m, 30m, 1h, 2h, 6h,
                                        1d, 3d: the SRE workbook's burn-rate windows)
    slo:error_budget_remaining:ratio    1 - errors over the SLO window / (1 - objective)

No ``slo:`` rule in the rule files -> no dashboard (nothing to show yet). ``slo:`` rules
without the names above -> an error naming them, so a rename on either side is caught at
``make dashboards`` (and by the drift test) instead of becoming empty panels.
"""

from __future__ import annotations

from pathlib import Path

from services.core.yamlfile import safe_load
from services.monitoring.dashgen.boards import Board, query_variable
from services.monitoring.dashgen.links import MONITORING_GUIDE, doc_url
from services.monitoring.dashgen.panels import Pos, Q, note, series, single

RULES_DIR = Path(__file__).resolve().parents[3] / "docker" / "prometheus" / "rules"
UID = "ai-suite-slo"
OBJECTIVE = "slo:objective:ratio"
BUDGET_REMAINING = "slo:error_budget_remaining:ratio"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
REQUIRED = (OBJECTIVE, BUDGET_REMAINING, "slo:sli_error:ratio_rate1h")


def error_ratio(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


def slo_records(rules_dir: Path = RULES_DIR) -> set[str]:
    """Names of the ``slo:`` recording rules in every rule file of ``rules_dir``."""
    names = set()
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (safe_load(path.read_text()) or {}).get("groups") or []:
            for rule in group.get("rules") or []:
                if str(rule.get("record", "")).startswith("slo:"):
                    names.add(str(rule["record"]))
    return names


def slo_board(base_url: str, records: set[str]) -> Board | None:
    if not records:
        return None
    missing = [name for name in REQUIRED if name not in records]
    if missing:
        raise ValueError(
            f"SLO recording rules exist but {missing} do not: the error-budget dashboard "
            f"assumes the names in {__name__} (its docstring); rename one side"
        )
    windows = [w for w in WINDOWS if error_ratio(w) in records]
    sel = 'service=~"$service", slo=~"$slo"'

    def burn(window: str) -> Q:
        # Burn rate = error ratio / error budget; 1 spends the budget exactly in the window.
        return Q(
            f"{error_ratio(window)}{{{sel}}} / on (service, slo) group_left ()"
            f" (1 - {OBJECTIVE}{{{sel}}})",
            "{{service}} {{slo}} " + window,
        )

    b = Board(
        UID,
        "SLOs & error budgets",
        "Error budget left and burn rates of every SLO (rules: slo:*).",
        base_url,
    ).variables(
        query_variable("service", "Service", f"label_values({OBJECTIVE}, service)"),
        query_variable("slo", "SLO", f'label_values({OBJECTIVE}{{service=~"$service"}}, slo)'),
    )
    return b.add(
        note(
            1,
            Pos(0, 0, 24, 2),
            "Burn rate 1 spends the budget in exactly the SLO window; the paging alerts fire "
            "at 14.4 (1h and 5m) and 6 (6h and 30m). Runbooks: "
            f"[MONITORING_GUIDE]({doc_url(base_url, MONITORING_GUIDE)}).",
        ),
        single(
            2,
            "Error budget remaining",
            Pos(0, 2, 24, 6),
            Q(f"{BUDGET_REMAINING}{{{sel}}}", "{{service}} {{slo}}"),
            steps=[(None, "red"), (0.25, "orange"), (0.5, "green")],
        ),
        series(
            3,
            "Burn rate by window",
            Pos(0, 8, 12, 9),
            *[burn(w) for w in windows],
            unit="short",
            minimum=0,
        ),
        series(
            4,
            "Error ratio (1h) against the budget",
            Pos(12, 8, 12, 9),
            Q(f"{error_ratio('1h')}{{{sel}}}", "{{service}} {{slo}} errors"),
            Q(f"1 - {OBJECTIVE}{{{sel}}}", "{{service}} {{slo}} budget"),
            unit="percentunit",
            minimum=0,
        ),
    )
