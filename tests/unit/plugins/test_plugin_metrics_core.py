"""The metrics core without pytest: parsing, assertions, contract, lint, coverage, sources."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from ai_suite_pytest.metrics import (
    CardinalityError,
    Contract,
    ContractError,
    CoverageData,
    Metrics,
    MetricsAssertionError,
    Snapshot,
    TextSource,
    assert_cardinality_stable,
    assert_counter_delta,
    assert_gauge,
    assert_histogram,
    build_report,
    from_registry,
    lint,
    parse_text,
    random_paths,
)
from ai_suite_pytest.metrics.plugin import _STATE, _State, pytest_testnodedown
from ai_suite_pytest.metrics.sources import ScrapeError, metrics_url, source_for
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def requests(registry: CollectorRegistry) -> Counter:
    return Counter("app_requests_total", "Requests.", ["route", "status"], registry=registry)


@pytest.fixture
def latency(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "app_latency_seconds", "Latency.", ["route"], buckets=(0.1, 1.0), registry=registry
    )


def test_text_and_registry_snapshots_agree(registry, requests, latency) -> None:
    requests.labels("/a", "200").inc(3)
    latency.labels("/a").observe(0.5)
    direct = from_registry(registry)
    parsed = parse_text(generate_latest(registry).decode())
    assert direct.samples == parsed.samples
    assert set(direct.families) == {"app_requests_total", "app_latency_seconds"}  # no _created
    assert direct.value("app_requests_total", {"route": "/a", "status": "200"}) == 3
    assert direct.value("nope_total", {}) is None


def test_counter_delta_with_label_subset(registry, requests) -> None:
    requests.labels("/a", "200").inc()
    before = from_registry(registry)
    requests.labels("/a", "200").inc(2)
    requests.labels("/b", "500").inc()  # absent before: counts from 0
    after = from_registry(registry)
    assert_counter_delta(before, after, "app_requests_total", {"route": "/a"}, delta=2)
    assert_counter_delta(before, after, "app_requests_total", {"status": "500"}, delta=1)
    assert_counter_delta(before, after, "app_requests_total", {"route": "/zzz"}, delta=0)
    assert_counter_delta(before, after, "app_requests_total", delta=3, aggregate=True)
    with pytest.raises(MetricsAssertionError, match="2 series of app_requests_total match"):
        assert_counter_delta(before, after, "app_requests_total", delta=3)


def test_failure_lists_the_nearest_series_with_values(registry, requests) -> None:
    before = from_registry(registry)
    requests.labels("/users", "200").inc()
    after = from_registry(registry)
    with pytest.raises(MetricsAssertionError) as info:
        assert_counter_delta(before, after, "app_requests_total", {"route": "/user"}, delta=1)
    message = str(info.value)
    assert "grew by 0" in message
    assert 'app_requests_total{route="/users",status="200"} = 1 (before: absent)' in message


def test_unknown_names_and_labels_fail_even_for_zero(registry, requests) -> None:
    snap = from_registry(registry)
    requests.labels("/a", "200")
    labelled = from_registry(registry)
    with pytest.raises(MetricsAssertionError, match="did you mean app_requests_total"):
        assert_counter_delta(snap, snap, "app_request_total", delta=0)
    with pytest.raises(MetricsAssertionError, match="has no label 'stauts'"):
        assert_counter_delta(labelled, labelled, "app_requests_total", {"stauts": "1"}, delta=0)


def test_histogram_count_and_bucket_bound(registry, latency) -> None:
    before = from_registry(registry)
    latency.labels("/a").observe(0.05)
    latency.labels("/a").observe(0.5)
    after = from_registry(registry)
    got = assert_histogram(before, after, "app_latency_seconds", {"route": "/a"}, count=2)
    assert got.buckets == {0.1: 1.0, 1.0: 2.0, float("inf"): 2.0}
    assert_histogram(before, after, "app_latency_seconds", {"route": "/a"}, at_most=1.5)
    with pytest.raises(MetricsAssertionError, match="1 of 2 were larger"):
        assert_histogram(before, after, "app_latency_seconds", {"route": "/a"}, at_most=0.2)
    with pytest.raises(MetricsAssertionError, match=r"no bucket bound is <= 0\.01"):
        assert_histogram(before, after, "app_latency_seconds", at_most=0.01)
    with pytest.raises(MetricsAssertionError, match="expected 3 new observations"):
        assert_histogram(before, after, "app_latency_seconds", {"route": "/a"}, count=3)


def test_histogram_assertion_on_a_counter_is_refused(registry, requests) -> None:
    snap = from_registry(registry)
    with pytest.raises(MetricsAssertionError, match="is a counter, not a histogram"):
        assert_histogram(snap, snap, "app_requests_total", count=0)


def test_gauge_value_and_wait_until(registry) -> None:
    gauge = Gauge("queue_depth", "Depth.", ["queue"], registry=registry)
    gauge.labels("q").set(2)
    assert_gauge(from_registry(registry), "queue_depth", {"queue": "q"}, value=2)
    with pytest.raises(MetricsAssertionError, match="expected queue_depth"):
        assert_gauge(from_registry(registry), "queue_depth", {"queue": "q"}, value=3)
    with pytest.raises(MetricsAssertionError, match="no series of queue_depth matches"):
        assert_gauge(from_registry(registry), "queue_depth", {"queue": "other"}, value=0)
    metrics = Metrics()
    watch = metrics.watch(registry)
    timer = threading.Timer(0.05, lambda: gauge.labels("q").set(0))
    timer.start()
    try:
        assert watch.wait_until("queue_depth", {"queue": "q"}, condition=lambda v: v == 0) == 0
        with pytest.raises(MetricsAssertionError, match=r"did not meet .* \(last value 0\)"):
            watch.wait_until("queue_depth", condition=lambda v: v > 5, timeout=0.05)
    finally:
        timer.join()
        metrics.close()


def test_background_scraper_records_a_peak_and_stops(registry) -> None:
    gauge = Gauge("inflight", "In flight.", registry=registry)
    metrics = Metrics()
    watch = metrics.watch(registry, background=True, interval=0.005, max_scrapes=3)
    with pytest.raises(RuntimeError, match="already scrapes"):
        watch.start_background()
    gauge.set(7)
    scraper = watch._scraper
    assert scraper is not None
    while len(watch.timeline()) < 3 or scraper.dropped == 0:
        threading.Event().wait(0.005)
    gauge.set(1)
    assert watch.peak("inflight") == 7
    metrics.close()
    assert not scraper.running
    assert len(scraper.scrapes) == 3  # bounded


def test_background_scraper_keeps_errors_and_stops_by_itself() -> None:
    def broken() -> str:
        raise ScrapeError("down")

    metrics = Metrics(coverage=CoverageData())
    watch = metrics.watch(TextSource(lambda: "# TYPE x gauge\nx 1\n"))
    watch.source = TextSource(broken)
    scraper = watch.start_background(interval=0.001, max_seconds=0.05)
    scraper._thread.join(timeout=5)
    assert not scraper.running
    assert scraper.errors
    assert "down" in scraper.errors[0]
    assert metrics.close() == ["text: down"]  # the final scrape failed too, and is reported


def test_cardinality_guard(registry, requests) -> None:
    app = FastAPI()

    @app.get("/items/{item}")
    def item(item: str) -> dict[str, str]:
        return {"item": item}

    def well_behaved(path: str) -> None:
        requests.labels("<unmatched>", "404").inc()

    def leaky(path: str) -> None:
        requests.labels(path, "404").inc()

    assert assert_cardinality_stable(lambda: from_registry(registry), well_behaved, n=20) == 1
    with pytest.raises(CardinalityError, match="20 requests to random unknown paths"):
        assert_cardinality_stable(lambda: from_registry(registry), leaky, n=20)
    assert len(set(random_paths(30))) == 30


def test_asgi_and_url_sources(registry, requests) -> None:
    from services.core.app import build_service_app

    parts = build_service_app("demo", registry=registry)
    metrics = Metrics()
    try:
        watch = metrics.watch(parts.app)
        assert watch.service == "demo"
        requests.labels("/a", "200").inc()
        watch.assert_counter_delta("app_requests_total", {"route": "/a"}, delta=1)
        assert watch.lint() == []
        with pytest.raises(ScrapeError, match=r"cannot scrape http://127\.0\.0\.1:9/metrics"):
            metrics.watch("http://127.0.0.1:9")
    finally:
        assert metrics.close() == []
    assert metrics_url("http://h:1") == "http://h:1/metrics"
    assert metrics_url("http://h:1/custom") == "http://h:1/custom"
    with pytest.raises(ValueError, match="expected an http"):
        source_for("ftp://x")
    with pytest.raises(TypeError, match="cannot scrape int"):
        source_for(3)


def test_url_source_reports_http_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="not ready")

    source = source_for("http://svc:1", service="svc")
    source._client = httpx.Client(transport=httpx.MockTransport(handler))  # type: ignore[attr-defined]
    try:
        with pytest.raises(ScrapeError, match="answered 503"):
            source.scrape()
    finally:
        source.close()


CONTRACT = {
    "standard": ["process_.*"],
    "metrics": {
        "app_requests_total": {
            "type": "counter",
            "labels": {"route": {"regex": "/[a-z]*"}, "status": ["200", "404"]},
        },
        "app_latency_seconds": {"type": "histogram", "unit": "seconds", "labels": {"route": "any"}},
        "only_b_total": {"type": "counter", "services": ["b"]},
        "app_missing_total": {"type": "counter", "services": ["a"], "help": "Exact help."},
    },
}


def test_contract_reports_every_kind_of_violation(registry, requests) -> None:
    contract = Contract.from_dict(CONTRACT)
    requests.labels("/a", "500").inc()
    Gauge("app_latency_seconds", "Wrong type.", registry=registry).set(1)
    Counter("only_b_total", "For b.", registry=registry).inc()
    Counter("stray_total", "Nobody declared me.", registry=registry)
    Gauge("process_thing", "Standard.", registry=registry)
    report = contract.check(from_registry(registry), service="a")
    kinds = {(v.kind, v.metric) for v in report.violations}
    assert kinds == {
        ("value", "app_requests_total"),
        ("type", "app_latency_seconds"),
        ("labels", "app_latency_seconds"),
        ("undeclared", "only_b_total"),
        ("undeclared", "stray_total"),
        ("missing", "app_missing_total"),
    }
    text = report.format()
    assert "status='500' is not allowed (one of 200, 404)" in text
    assert "declared only for b" in text
    assert contract.check(from_registry(registry), service="b").violations != []


def test_contract_help_rules() -> None:
    contract = Contract.from_dict(CONTRACT)
    text = (
        "# HELP app_missing_total Other help.\n# TYPE app_missing_total counter\n"
        "app_missing_total 1\n"
        "# HELP app_requests_total \n# TYPE app_requests_total counter\n"
    )
    report = contract.check(parse_text(text), service="a")
    details = {v.metric: v.detail for v in report.violations if v.kind == "help"}
    assert details["app_missing_total"].startswith("help is 'Other help.'")
    assert details["app_requests_total"] == "no help text"
    assert "breaks the metrics contract" in report.format()


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"x_total": {"type": "gauge"}}, "only counters, and every counter, end in _total"),
        ({"x": {"type": "counter"}}, "only counters"),
        ({"x": {"type": "meter"}}, "type must be one of"),
        ({"x_ms": {"type": "gauge", "unit": "seconds"}}, "unit 'seconds' must be the name"),
        ({"x": {"type": "gauge", "labels": {"a": 3}}}, "expected a list of values"),
        ({"x": {"type": "gauge", "labels": {"a": {"regex": "("}}}}, "bad regex"),
        ({"9x": {"type": "gauge"}}, "not a valid metric name"),
        ({"x": "gauge"}, "expected a mapping"),
    ],
)
def test_contract_file_errors(metrics: dict, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        Contract.from_dict({"metrics": metrics})


def test_repository_contract_loads_and_scopes_services() -> None:
    contract = Contract.load(ROOT / "tests" / "metrics_contract.yaml")
    assert "llm_requests_total" in contract.for_service("gateway")
    assert "llm_requests_total" not in contract.for_service("rag")
    assert "rag_queries_total" in contract.for_service("rag")
    assert contract.is_standard("process_cpu_seconds_total")
    with pytest.raises(ContractError, match="cannot read metrics contract"):
        Contract.load(ROOT / "no-such-contract.yaml")
    with pytest.raises(ContractError, match="expected a mapping with a 'metrics'"):
        Contract.from_dict([])


HOSTILE = """# HELP requests counted
# TYPE requests counter
requests{fooBar="a"} 1
# TYPE latency_milliseconds histogram
latency_milliseconds_bucket{le="+Inf"} 1
latency_milliseconds_count 1
latency_milliseconds_sum 1
# HELP temp_gauge g
# TYPE temp_gauge gauge
temp_gauge{le="1",quantile="0.5"} 1
# HELP queue_total g
# TYPE queue_total gauge
queue_total 3
# HELP http:requests x
# TYPE http:requests gauge
http:requests 1
# HELP fooBar_ms x
# TYPE fooBar_ms gauge
fooBar_ms 1
# HELP size_count x
# TYPE size_count gauge
size_count 1
# HELP odd_bucket x
# TYPE odd_bucket gauge
odd_bucket 1
# HELP ok_bytes_total fine
# TYPE ok_bytes_total counter
ok_bytes_total 1
"""


def test_lint_finds_what_promtool_finds() -> None:
    found = [str(p) for p in lint(HOSTILE)]
    assert 'latency_milliseconds use base unit "seconds" instead of "milliseconds"' in found
    assert 'requests counter metrics should have "_total" suffix' in found
    assert "temp_gauge metric name should not include type 'gauge'" in found
    assert not [line for line in found if line.startswith("ok_bytes_total")]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (make system-deps): cross-check skipped")
    run = subprocess.run(
        [promtool, "check", "metrics"], input=HOSTILE, capture_output=True, text=True, timeout=30
    )
    assert (run.stdout + run.stderr).strip().splitlines() == found


@given(st.text(min_size=0, max_size=30), st.floats(min_value=0, max_value=1e12))
def test_any_label_value_round_trips_through_text(value: str, amount: float) -> None:
    registry = CollectorRegistry()
    Counter("hostile_total", "Hostile labels.", ["v"], registry=registry).labels(value).inc(amount)
    parsed = parse_text(generate_latest(registry).decode())
    assert parsed.value("hostile_total", {"v": value}) == pytest.approx(amount)


def test_coverage_report_and_worker_merge(registry, requests) -> None:
    contract = Contract.from_dict(CONTRACT)
    before = from_registry(registry)
    requests.labels("/a", "200").inc()
    data = CoverageData()
    data.record(before, from_registry(registry), "a")
    report = build_report(contract, data)
    assert report.covered == ["app_requests_total"]
    assert report.uncovered == ["app_latency_seconds", "app_missing_total"]
    assert report.unseen_values == {"app_requests_total": ["status=404"]}
    assert round(report.percent, 1) == 33.3
    assert "1/3 contract metrics exercised" in report.lines()[0]

    class Config:
        stash = pytest.Stash()

    class Node:
        def __init__(self) -> None:
            self.config = Config()
            self.workeroutput = {"ai_suite_metrics_coverage": data.to_json()}

    Config.stash[_STATE] = _State(None, None)
    pytest_testnodedown(Node(), None)
    merged = Config.stash[_STATE].coverage
    assert merged.exercised == data.exercised
    assert merged.services == {"a"}
    assert build_report(contract, CoverageData()).total == 4  # nothing watched: whole contract


def test_snapshot_helpers() -> None:
    snap = Snapshot({})
    assert snap.series_count() == 0
    assert snap.family_of("x") is None
