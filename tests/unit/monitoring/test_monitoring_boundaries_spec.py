"""The boundary spec covers every alert, the required alerts exist, and each route keeps its
pinned notification timing. The generated promtool cases run in
tests/integration/monitoring/test_monitoring_boundaries.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.monitoring.boundaries import (
    BoundarySpecError,
    boundary_groups,
    failed_cases,
    load_boundaries,
    missing_boundaries,
    promtool_documents,
)
from services.monitoring.requirements import effective_route_timings, route_timing_problems
from tests.support.monitoring import (
    BOUNDARIES_FILE,
    MonitoringSources,
    dump_yaml,
    load_yaml,
    static_problems,
)

BOUNDARIES = load_boundaries(BOUNDARIES_FILE)


def test_the_repository_passes_every_static_check() -> None:
    assert static_problems(MonitoringSources()) == []


def test_an_alert_without_a_spec_is_named() -> None:
    assert missing_boundaries(["ServiceDown", "BrandNewAlert"], BOUNDARIES) == ["BrandNewAlert"]


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=[b.title for b in BOUNDARIES])
def test_each_boundary_has_below_above_and_pending_cases(boundary) -> None:
    names = [group["name"] for group in boundary_groups(boundary)]
    if boundary.always:
        # The Watchdog: no threshold and no `for`, only "it fires".
        assert names == [f"boundary {boundary.title}: always fires"]
        return
    assert all(name.startswith(f"boundary {boundary.title}: ") for name in names)
    assert any("stays silent" in name for name in names)
    assert any("fires" in name for name in names)
    # An alert without `for` fires at its onset: there is no pending phase to pin.
    assert any("still pending" in name for name in names) == bool(boundary.for_seconds)


def test_margins_straddle_the_threshold(tmp_path: Path) -> None:
    spec = {
        "alerts": {
            "Ratio": {"threshold": "> 0.05", "series": [{"series": "a"}]},
            "Count": {"threshold": "> 10", "step": 1, "series": [{"series": "b"}]},
            "AtLeast": {"threshold": ">= 30", "step": 1, "series": [{"series": "c"}]},
        }
    }
    path = tmp_path / "b.yml"
    path.write_text(dump_yaml(spec))
    got = {b.alert: (b.silent, b.fires) for b in load_boundaries(path)}
    assert got["Ratio"] == pytest.approx((0.049, 0.051))
    assert got["Count"] == (10, 11)
    assert got["AtLeast"] == (29, 30)


def test_a_for_that_is_not_a_whole_number_of_intervals_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.yml"
    path.write_text(
        dump_yaml(
            {
                "alerts": {
                    "X": {
                        "values": {"silent": 0, "fires": 1},
                        "for": "90s",
                        "series": [{"series": "x"}],
                    }
                }
            }
        )
    )
    with pytest.raises(BoundarySpecError, match="not a multiple of the interval"):
        load_boundaries(path)


def test_promtool_failures_are_attributed_to_their_case(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(dump_yaml({"groups": [{"name": "g", "rules": []}]}))
    (document,) = promtool_documents(
        [b for b in BOUNDARIES if b.alert == "ApprovalBacklog"], [rules]
    ).values()
    pending = next(g for g in document["tests"] if "pending" in g["name"])
    check = pending["promql_expr_test"][0]
    escaped = check["expr"].replace('"', '\\"')
    output = f'  FAILED:\n    expr: "{escaped}", time: 24m,\n        exp: ...\n'
    assert failed_cases(output, document) == [
        "boundary ApprovalBacklog: for minus one interval is still pending"
    ]
    assert document["group_eval_order"] == ["g"]


def test_route_timings_are_inherited_and_compared_as_durations() -> None:
    config = load_yaml(MonitoringSources().alertmanager)
    assert effective_route_timings(config)["critical"]["group_wait"] == "5s"
    critical = next(r for r in config["route"]["routes"] if r["receiver"] == "critical")
    del critical["group_interval"]
    critical["repeat_interval"] = "60m"
    assert route_timing_problems(
        config, {"critical": {"group_interval": "1m", "repeat_interval": "1h"}}
    ) == ["route critical: group_interval is 5m, must be 1m"]
