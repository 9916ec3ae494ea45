"""Metrics testing: scrape, diff, assert, check a contract, lint, measure coverage.

The core (this package minus ``plugin``) does not import pytest. See
``docs/testing/metrics.md``. Names are imported on first use (PEP 562): the
pytest plugin imports this package in every run, and most runs assert on no metric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ai_suite_pytest._lazy import lazy_exports

# Eager: the submodule ``lint`` would otherwise shadow the function once imported.
from ai_suite_pytest.metrics.lint import lint

_WHERE = {
    "AsgiSource": "sources",
    "BackgroundScraper": "scraper",
    "CardinalityError": "cardinality",
    "Contract": "contract",
    "ContractError": "contract",
    "ContractReport": "contract",
    "CoverageData": "coverage",
    "CoverageReport": "coverage",
    "Family": "exposition",
    "HistogramDelta": "assertions",
    "Metrics": "watch",
    "MetricsAssertionError": "assertions",
    "Problem": "lint",
    "RegistrySource": "sources",
    "ScrapeError": "sources",
    "Snapshot": "exposition",
    "TextSource": "sources",
    "UrlSource": "sources",
    "Violation": "contract",
    "Watch": "watch",
    "assert_cardinality_stable": "cardinality",
    "assert_counter_delta": "assertions",
    "assert_gauge": "assertions",
    "assert_histogram": "assertions",
    "build_report": "coverage",
    "counter_delta": "assertions",
    "from_registry": "exposition",
    "gauge_value": "assertions",
    "histogram_delta": "assertions",
    "parse_text": "exposition",
    "random_paths": "cardinality",
    "source_for": "sources",
}

if TYPE_CHECKING:
    from ai_suite_pytest.metrics.assertions import (
        HistogramDelta,
        MetricsAssertionError,
        assert_counter_delta,
        assert_gauge,
        assert_histogram,
        counter_delta,
        gauge_value,
        histogram_delta,
    )
    from ai_suite_pytest.metrics.cardinality import (
        CardinalityError,
        assert_cardinality_stable,
        random_paths,
    )
    from ai_suite_pytest.metrics.contract import Contract, ContractError, ContractReport, Violation
    from ai_suite_pytest.metrics.coverage import CoverageData, CoverageReport, build_report
    from ai_suite_pytest.metrics.exposition import Family, Snapshot, from_registry, parse_text
    from ai_suite_pytest.metrics.lint import Problem
    from ai_suite_pytest.metrics.scraper import BackgroundScraper
    from ai_suite_pytest.metrics.sources import (
        AsgiSource,
        RegistrySource,
        ScrapeError,
        TextSource,
        UrlSource,
        source_for,
    )
    from ai_suite_pytest.metrics.watch import Metrics, Watch


__getattr__ = lazy_exports(__name__, _WHERE)


__all__ = [
    "AsgiSource",
    "BackgroundScraper",
    "CardinalityError",
    "Contract",
    "ContractError",
    "ContractReport",
    "CoverageData",
    "CoverageReport",
    "Family",
    "HistogramDelta",
    "Metrics",
    "MetricsAssertionError",
    "Problem",
    "RegistrySource",
    "ScrapeError",
    "Snapshot",
    "TextSource",
    "UrlSource",
    "Violation",
    "Watch",
    "assert_cardinality_stable",
    "assert_counter_delta",
    "assert_gauge",
    "assert_histogram",
    "build_report",
    "counter_delta",
    "from_registry",
    "gauge_value",
    "histogram_delta",
    "lint",
    "parse_text",
    "random_paths",
    "source_for",
]
