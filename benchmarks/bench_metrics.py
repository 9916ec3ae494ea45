"""Cost of one metrics-checked test against the number of series in the exposition.

Run: .venv/bin/python benchmarks/bench_metrics.py [--runs 50]
A test costs two scrapes (before, after), two parses and one diff or assertion.
Prints a markdown table of medians in milliseconds.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ai_suite_pytest.metrics import assert_counter_delta, from_registry, parse_text
from ai_suite_pytest.metrics.coverage import changed_series


def registry_with(series: int) -> tuple[CollectorRegistry, Counter]:
    """A counter with series/2 children and a histogram adding the rest (1 + 4 buckets each)."""
    registry = CollectorRegistry()
    counter = Counter("bench_requests_total", "Requests.", ["route", "status"], registry=registry)
    histogram = Histogram(
        "bench_duration_seconds", "Duration.", ["route"], buckets=(0.1, 1, 10), registry=registry
    )
    counters = series // 2
    for i in range(counters):
        counter.labels(f"/r{i}", "200").inc()
    for i in range((series - counters) // 6):  # 3 buckets + +Inf + count + sum
        histogram.labels(f"/r{i}").observe(0.5)
    return registry, counter


def median_ms(runs: int, action: Callable[[], object]) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def row(series: int, runs: int) -> str:
    registry, counter = registry_with(series)
    text = generate_latest(registry).decode()
    before = parse_text(text)
    counter.labels("/r1", "200").inc()
    after = parse_text(generate_latest(registry).decode())
    expose = median_ms(runs, lambda: generate_latest(registry))
    parse = median_ms(runs, lambda: parse_text(text))
    collect = median_ms(runs, lambda: from_registry(registry))
    diff = median_ms(runs, lambda: changed_series(before, after))
    check = median_ms(
        runs,
        lambda: assert_counter_delta(
            before, after, "bench_requests_total", {"route": "/r1"}, delta=1
        ),
    )
    per_text = 2 * (expose + parse) + check
    per_registry = 2 * collect + check
    return (
        f"| {after.series_count():,} | {expose:.2f} | {parse:.2f} | {collect:.2f} | {diff:.2f} | "
        f"{check:.2f} | {per_text:.2f} | {per_registry:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, runs per cell: {args.runs}\n")
    print(
        "| series | expose (generate_latest) | parse text | collect registry | diff "
        "(changed series) | counter-delta assertion | per test, text | per test, registry |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for series in (100, 1_000, 10_000):
        print(row(series, args.runs))


if __name__ == "__main__":
    main()
