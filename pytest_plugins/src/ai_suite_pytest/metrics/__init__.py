"""Metrics testing: scrape, diff, assert, check a contract, lint, measure coverage.

The core (this package minus ``plugin``) does not import pytest. See
``docs/testing/metrics.md``.
"""

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
from ai_suite_pytest.metrics.lint import Problem, lint
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
