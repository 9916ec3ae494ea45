"""A watch on one exposition for the length of a test: baseline, assertions, background.

``Metrics.watch(target)`` takes the "before" snapshot at once; every assertion
scrapes a fresh "after" snapshot and compares it with the baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ai_suite_pytest.metrics import assertions
from ai_suite_pytest.metrics.cardinality import assert_cardinality_stable
from ai_suite_pytest.metrics.contract import Contract, ContractReport
from ai_suite_pytest.metrics.coverage import CoverageData
from ai_suite_pytest.metrics.exposition import Snapshot
from ai_suite_pytest.metrics.lint import Problem, lint
from ai_suite_pytest.metrics.scraper import BackgroundScraper, Scrape
from ai_suite_pytest.metrics.sources import Source, source_for

LabelArg = Mapping[str, str] | None


class Watch:
    def __init__(
        self,
        source: Source,
        *,
        contract: Contract | None = None,
        coverage: CoverageData | None = None,
        owns_source: bool = True,
    ) -> None:
        self.source = source
        self.contract = contract
        self._coverage = coverage
        self._owns_source = owns_source
        self._scraper: BackgroundScraper | None = None
        self._closed = False
        self.before = source.scrape()

    @property
    def service(self) -> str | None:
        return self.source.service

    def scrape(self) -> Snapshot:
        return self.source.scrape()

    def rebase(self) -> Snapshot:
        """Take a new baseline (e.g. after the test's own set-up requests)."""
        self.before = self.scrape()
        return self.before

    # assertions --------------------------------------------------------------------------

    def counter_delta(self, name: str, labels: LabelArg = None, *, aggregate: bool = False):
        return assertions.counter_delta(
            self.before, self.scrape(), name, labels, aggregate=aggregate
        )

    def assert_counter_delta(
        self, name: str, labels: LabelArg = None, *, delta: float, aggregate: bool = False
    ) -> None:
        __tracebackhide__ = True
        assertions.assert_counter_delta(
            self.before, self.scrape(), name, labels, delta=delta, aggregate=aggregate
        )

    def assert_histogram(
        self,
        name: str,
        labels: LabelArg = None,
        *,
        count: float | None = None,
        at_most: float | None = None,
        aggregate: bool = False,
    ) -> assertions.HistogramDelta:
        __tracebackhide__ = True
        return assertions.assert_histogram(
            self.before,
            self.scrape(),
            name,
            labels,
            count=count,
            at_most=at_most,
            aggregate=aggregate,
        )

    def gauge(self, name: str, labels: LabelArg = None, *, aggregate: bool = False):
        return assertions.gauge_value(self.scrape(), name, labels, aggregate=aggregate)

    def assert_gauge(
        self,
        name: str,
        labels: LabelArg = None,
        *,
        value: float,
        tolerance: float = 0.0,
        aggregate: bool = False,
    ) -> None:
        __tracebackhide__ = True
        assertions.assert_gauge(
            self.scrape(), name, labels, value=value, tolerance=tolerance, aggregate=aggregate
        )

    def wait_until(
        self,
        name: str,
        labels: LabelArg = None,
        *,
        condition: Callable[[float], bool],
        timeout: float = 5.0,
        interval: float = 0.02,
        describe: str = "the condition",
    ) -> float:
        """Poll the gauge until ``condition(value)`` holds; fail with the last value seen."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        last: float | None = None
        while True:
            snapshot = self.scrape()
            last = assertions.gauge_value(snapshot, name, labels)
            if last is not None and condition(last):
                return last
            if time.monotonic() >= deadline:
                shown = "no matching series" if last is None else f"last value {last:g}"
                assertions._fail(
                    f"{name}{dict(labels or {}) or ''} did not meet {describe} within "
                    f"{timeout:g}s ({shown})",
                    snapshot,
                    name,
                    dict(labels or {}),
                )
            time.sleep(interval)

    def assert_cardinality_stable(
        self, request: Callable[[str], object], *, n: int = 50, warmup: int = 1
    ) -> int:
        __tracebackhide__ = True
        return assert_cardinality_stable(self.scrape, request, n=n, warmup=warmup)

    def check_contract(self, service: str | None = None) -> ContractReport:
        if self.contract is None:
            raise RuntimeError(
                "no metrics contract configured: set --metrics-contract or the ini option "
                "metrics_contract, or pass contract= to metrics.watch()"
            )
        return self.contract.check(self.scrape(), service or self.service)

    def assert_contract(self, service: str | None = None) -> None:
        __tracebackhide__ = True
        report = self.check_contract(service)
        if not report.ok:
            raise assertions.MetricsAssertionError(report.format())

    def lint(self) -> list[Problem]:
        return lint(self.source.text())

    def assert_lint(self) -> None:
        __tracebackhide__ = True
        problems = self.lint()
        if problems:
            listing = "\n".join(f"  {p}" for p in problems)
            raise assertions.MetricsAssertionError(
                f"{self.source.name}: {len(problems)} naming problem(s) "
                f"(promtool check metrics):\n{listing}"
            )

    # background --------------------------------------------------------------------------

    def start_background(
        self, *, interval: float = 0.05, max_scrapes: int = 1000, max_seconds: float = 120.0
    ) -> BackgroundScraper:
        if self._scraper is not None:
            raise RuntimeError("this watch already scrapes in the background")
        self._scraper = BackgroundScraper(
            self.source, interval=interval, max_scrapes=max_scrapes, max_seconds=max_seconds
        ).start()
        return self._scraper

    def timeline(self) -> list[Scrape]:
        return self._scraper.timeline() if self._scraper else []

    def peak(self, name: str, labels: LabelArg = None) -> float | None:
        """Highest value of a gauge across the background scrapes (None if never seen)."""
        values = [
            v
            for scrape in self.timeline()
            if (v := assertions.gauge_value(scrape.snapshot, name, labels)) is not None
        ]
        return max(values) if values else None

    # end ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop scraping, record coverage from a final scrape, release the source."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._scraper is not None:
                self._scraper.stop()
            if self._coverage is not None:
                self._coverage.record(self.before, self.scrape(), self.service)
        finally:
            if self._owns_source:
                self.source.close()


class Metrics:
    """What the ``metrics`` fixture hands a test: ``watch()`` any number of expositions."""

    def __init__(
        self, *, contract: Contract | None = None, coverage: CoverageData | None = None
    ) -> None:
        self.contract = contract
        self._coverage = coverage
        self._watches: list[Watch] = []

    def watch(
        self,
        target: Any,
        *,
        service: str | None = None,
        background: bool = False,
        interval: float = 0.05,
        max_scrapes: int = 1000,
        max_seconds: float = 120.0,
        contract: Contract | None = None,
    ) -> Watch:
        """Start watching a registry, an ASGI app, a URL or a Source; baseline taken now."""
        source = source_for(target, service=service)
        watch = Watch(
            source,
            contract=contract or self.contract,
            coverage=self._coverage,
            owns_source=source is not target,
        )
        self._watches.append(watch)
        if background:
            watch.start_background(
                interval=interval, max_scrapes=max_scrapes, max_seconds=max_seconds
            )
        return watch

    def close(self) -> list[str]:
        """Close every watch; returns the errors met (a dead service at teardown, ...)."""
        errors = []
        for watch in self._watches:
            try:
                watch.close()
            except Exception as exc:  # one broken source must not hide the others
                errors.append(f"{watch.source.name}: {exc}")
        self._watches.clear()
        return errors
