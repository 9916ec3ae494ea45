"""SLOs as code: the committed rules/slo.yml and tests/slo.yml are exactly what slos.yml
generates (promtool runs the tests in tests/integration/monitoring), and the generator
refuses malformed SLOs."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.monitoring.slo import SloError, generated, load_slos, rules
from tests.support.monitoring import dump_yaml


def test_generated_files_are_committed_as_generated() -> None:
    for path, text in generated().items():
        assert path.read_text() == text, (
            f"{path} differs from what docker/prometheus/slos.yml generates:"
            " run `.venv/bin/python -m services.monitoring.slo` and commit"
        )


def test_burn_thresholds_follow_the_objective() -> None:
    window, slos = load_slos()
    gateway = next(s for s in slos if s.name == "gateway-availability")
    fast = next(
        r
        for g in rules(window, [gateway])["groups"]
        for r in g["rules"]
        if r.get("alert") == "ErrorBudgetBurnFast"
    )
    budget = 1 - gateway.objective
    for factor in (14.4, 6):
        assert f"> {format(round(factor * budget, 12), 'g')}\n" in fast["expr"] + "\n"


@pytest.mark.parametrize(
    ("slo", "message"),
    [
        ({"name": "x", "service": "s", "kind": "speed", "objective": 0.9}, "kind must be"),
        ({"name": "x", "service": "s", "kind": "availability", "objective": 99.5}, "between 0"),
        ({"name": "x", "service": "s", "kind": "latency", "objective": 0.9}, "needs metric"),
    ],
)
def test_malformed_slos_are_refused(tmp_path: Path, slo: dict, message: str) -> None:
    path = tmp_path / "slos.yml"
    path.write_text(dump_yaml({"window": "30d", "slos": [{"description": "d", **slo}]}))
    with pytest.raises(SloError, match=message):
        load_slos(path)
