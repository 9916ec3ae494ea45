"""pytest adapter for :mod:`ai_suite_pytest.metrics`: the ``metrics`` fixture and coverage.

Loaded in every run once installed, so it does nothing unless asked: the
fixtures are not autouse, and the coverage summary appears only when a test
used ``metrics`` and a contract is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_suite_pytest.metrics.contract import Contract
from ai_suite_pytest.metrics.coverage import CoverageData, build_report
from ai_suite_pytest.metrics.watch import Metrics

_STATE = pytest.StashKey["_State"]()
_WORKER_KEY = "ai_suite_metrics_coverage"


class _State:
    def __init__(self, contract_path: Path | None, floor: float | None) -> None:
        self.contract_path = contract_path
        self.floor = floor
        self.coverage = CoverageData()
        self.teardown_errors: list[str] = []
        self._contract: Contract | None = None
        self.below_floor = False

    def contract(self) -> Contract | None:
        if self._contract is None and self.contract_path is not None:
            self._contract = Contract.load(self.contract_path)
        return self._contract


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("metrics", "metrics assertions and contract (ai-suite)")
    group.addoption(
        "--metrics-contract",
        default=None,
        help="metrics contract YAML checked by metrics.watch(...).assert_contract() "
        "(default: ini metrics_contract)",
    )
    group.addoption(
        "--metrics-coverage-min",
        type=float,
        default=None,
        help="fail the run when fewer than this percentage of contract metrics were exercised "
        "(default: ini metrics_coverage_min; off when unset)",
    )
    parser.addini("metrics_contract", "metrics contract YAML, relative to the rootdir", default="")
    parser.addini("metrics_coverage_min", "minimum metrics coverage in percent", default="")


def _floor(config: pytest.Config) -> float | None:
    raw = config.getoption("--metrics-coverage-min")
    if raw is None:
        ini = str(config.getini("metrics_coverage_min")).strip()
        if not ini:
            return None
        try:
            raw = float(ini)
        except ValueError:
            raise pytest.UsageError(f"metrics_coverage_min must be a number, got {ini!r}") from None
    if not 0 <= raw <= 100:
        raise pytest.UsageError(f"--metrics-coverage-min must be 0-100, got {raw}")
    return float(raw)


def pytest_configure(config: pytest.Config) -> None:
    raw = config.getoption("--metrics-contract") or str(config.getini("metrics_contract")).strip()
    path = Path(config.rootpath, raw) if raw else None
    config.stash[_STATE] = _State(path, _floor(config))


@pytest.fixture(scope="session")
def metrics_contract(pytestconfig: pytest.Config) -> Contract:
    """The configured contract; a test asking for it errors clearly when none is set."""
    contract = pytestconfig.stash[_STATE].contract()
    if contract is None:
        raise pytest.UsageError(
            "no metrics contract configured: pass --metrics-contract=PATH or set the ini "
            "option metrics_contract"
        )
    return contract


@pytest.fixture
def metrics(pytestconfig: pytest.Config) -> Iterator[Metrics]:
    """Watch expositions during a test: ``w = metrics.watch(app_or_url_or_registry)``."""
    state = pytestconfig.stash[_STATE]
    manager = Metrics(contract=state.contract(), coverage=state.coverage)
    yield manager
    state.teardown_errors += manager.close()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash[_STATE]
    workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput[_WORKER_KEY] = state.coverage.to_json()
        return
    contract = state.contract()
    if state.floor is None or contract is None or exitstatus != 0:
        return
    report = build_report(contract, state.coverage)
    if report.percent < state.floor:
        state.below_floor = True
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: merge a finished worker's coverage."""
    data = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
    if data:
        node.config.stash[_STATE].coverage.merge_json(data)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash[_STATE]
    if getattr(config, "workeroutput", None) is not None:
        return
    contract = state.contract()
    if state.teardown_errors:
        terminalreporter.write_sep("-", "metrics: watches that could not be scraped at teardown")
        for line in state.teardown_errors:
            terminalreporter.write_line(f"  {line}")
    if contract is None or state.coverage.empty:
        return
    report = build_report(contract, state.coverage)
    terminalreporter.write_sep("-", "metrics coverage")
    for line in report.lines():
        terminalreporter.write_line(line)
    if state.below_floor:
        terminalreporter.write_line(
            f"FAIL: metrics coverage {report.percent:.1f}% is below the floor of "
            f"{state.floor:g}% (--metrics-coverage-min / metrics_coverage_min)",
            red=True,
        )
