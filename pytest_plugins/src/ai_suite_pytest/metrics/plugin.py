"""pytest adapter for :mod:`ai_suite_pytest.metrics`: the ``metrics`` fixture and coverage.

Loaded in every run once installed, so it does nothing unless asked: the
fixtures are not autouse, the coverage summary appears only when a test used
``metrics`` and a contract is configured, and the core (prometheus_client,
asyncio, http.client) is imported by the fixtures, not here. Configuration is
checked at start-up: a bad option or ini value stops the run (exit code 4) with
the key, the value and the fix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ai_suite_pytest.metrics.contract import Contract
    from ai_suite_pytest.metrics.coverage import CoverageData
    from ai_suite_pytest.metrics.watch import Metrics

_STATE = pytest.StashKey["_State"]()
_WORKER_KEY = "ai_suite_metrics_coverage"


class _State:
    def __init__(self, contract_path: Path | None, floor: float | None) -> None:
        self.contract_path = contract_path
        self.floor = floor
        self.teardown_errors: list[str] = []
        self._contract: Contract | None = None
        self._coverage: CoverageData | None = None
        self.below_floor = False

    @property
    def coverage(self) -> CoverageData:
        if self._coverage is None:
            from ai_suite_pytest.metrics.coverage import CoverageData

            self._coverage = CoverageData()
        return self._coverage

    @property
    def used(self) -> bool:
        return self._coverage is not None and not self._coverage.empty

    def contract(self) -> Contract | None:
        if self._contract is None and self.contract_path is not None:
            from ai_suite_pytest.metrics.contract import Contract

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
        default=None,
        help="fail the run when fewer than this percentage of contract metrics were exercised "
        "(0-100; needs a contract; default: ini metrics_coverage_min; off when unset)",
    )
    parser.addini("metrics_contract", "metrics contract YAML, relative to the rootdir", default="")
    parser.addini("metrics_coverage_min", "minimum metrics coverage in percent", default="")


def _setting(config: pytest.Config, option: str, ini: str) -> tuple[str, str] | None:
    """(where it was set, raw value) of an option that falls back to an ini value."""
    raw = config.getoption(option)
    if raw is not None:
        return option, str(raw)
    value = str(config.getini(ini)).strip()
    return (f"ini {ini}", value) if value else None


def _floor(config: pytest.Config) -> float | None:
    setting = _setting(config, "--metrics-coverage-min", "metrics_coverage_min")
    if setting is None:
        return None
    key, raw = setting
    try:
        floor = float(raw)
    except ValueError:
        floor = math.nan
    if not 0 <= floor <= 100:  # NaN fails this too
        raise pytest.UsageError(
            f"{key}={raw!r}: expected a percentage from 0 to 100 (e.g. "
            f"--metrics-coverage-min=80), or leave it unset to report coverage without a floor"
        )
    return floor


def _contract_path(config: pytest.Config) -> tuple[str, Path] | None:
    setting = _setting(config, "--metrics-contract", "metrics_contract")
    if setting is None:
        return None
    key, raw = setting
    path = Path(config.rootpath, raw)
    if not path.is_file():
        raise pytest.UsageError(
            f"{key}={raw!r}: no such file ({path}); give the metrics contract's path "
            f"relative to the rootdir {config.rootpath}, or unset it"
        )
    return f"{key}={raw!r}", path


def pytest_configure(config: pytest.Config) -> None:
    where, path = _contract_path(config) or ("", None)
    floor = _floor(config)
    if floor is not None and path is None:
        raise pytest.UsageError(
            f"--metrics-coverage-min / metrics_coverage_min={floor:g} needs a metrics contract "
            "(coverage is measured against it): set --metrics-contract=PATH or the ini "
            "metrics_contract, or drop the floor"
        )
    state = config.stash[_STATE] = _State(path, floor)
    if path is not None:
        # The contract is read at start-up so a broken file stops the run before any
        # test; only a run that configures one pays for YAML (~10 ms).
        from ai_suite_pytest.metrics.contract import ContractError

        try:
            state.contract()
        except ContractError as exc:
            raise pytest.UsageError(
                f"{where}: {exc}; fix the file (format: "
                "docs/testing/metrics.md, 'The metrics contract') or point to another one"
            ) from None


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
def metrics(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Iterator[Metrics]:
    """Watch expositions during a test: ``w = metrics.watch(app_or_url_or_registry)``."""
    from ai_suite_pytest.metrics.watch import Metrics

    state = pytestconfig.stash[_STATE]
    # Under xdist, a URL is taken for a service other workers' tests use too, unless
    # the test is stack_exclusive (it then runs while no other test uses the stack).
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    exclusive = request.node.get_closest_marker("stack_exclusive") is not None
    contract = state.contract()
    manager = Metrics(
        contract=contract,
        # Coverage is reported against a contract only: without one, a watch's close
        # does not scrape once more for it.
        coverage=state.coverage if contract is not None else None,
        shared_urls=bool(worker) and not exclusive,
    )
    yield manager
    state.teardown_errors += manager.close()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash[_STATE]
    workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        if state.used:
            workeroutput[_WORKER_KEY] = state.coverage.to_json()
        return
    contract = state.contract()
    if state.floor is None or contract is None or exitstatus != 0:
        return
    from ai_suite_pytest.metrics.coverage import build_report

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
    if state.teardown_errors:
        terminalreporter.write_sep("-", "metrics: watches that could not be scraped at teardown")
        for line in state.teardown_errors:
            terminalreporter.write_line(f"  {line}")
    contract = state.contract()
    if contract is None or not state.used:
        return
    from ai_suite_pytest.metrics.coverage import build_report

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
