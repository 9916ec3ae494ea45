"""Counter resets (PromQL increase()), lazy parsing of watched text, cardinality scoping."""

from __future__ import annotations

import pytest
from ai_suite_pytest.metrics import (
    CardinalityError,
    Metrics,
    Snapshot,
    TextSource,
    assert_cardinality_stable,
    counter_delta,
    histogram_delta,
)
from ai_suite_pytest.metrics.assertions import increase
from prometheus_client import CollectorRegistry, Counter, generate_latest


def counter(value: float | None, route: str = "/a") -> Snapshot:
    lines = "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\n"
    if value is not None:
        lines += f'jobs_total{{route="{route}"}} {value}\n'
    return Snapshot.from_text(lines + "# TYPE other gauge\nother 1\n")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([3, 5], 2),  # no reset
        ([5, 1], 1),  # one restart: the increase is the new value
        ([5, 7, 1, 2], 4),  # +2 before the restart, then 1, then +1
        ([None, 4], 4),  # born during the test
        ([5, None, 2], 2),  # vanished with the restart, recreated
        ([5, 6], 1),  # a restart to 6 or more between two scrapes cannot be seen
        ([5], 0),
    ],
)
def test_increase_is_promql_increase(values: list[float | None], expected: float) -> None:
    assert increase(values) == expected


def test_counter_delta_across_a_restart() -> None:
    assert counter_delta(counter(5), counter(1), "jobs_total", {"route": "/a"}) == 1
    assert counter_delta(counter(5), counter(7), "jobs_total", {"route": "/a"}) == 2
    history = [counter(9), counter(0)]
    assert counter_delta(counter(5), counter(2), "jobs_total", history=history) == 6


def histogram(count: int, total: float, low: int) -> Snapshot:
    return Snapshot.from_text(
        "# TYPE lat histogram\n"
        f'lat_bucket{{le="0.5"}} {low}\nlat_bucket{{le="+Inf"}} {count}\n'
        f"lat_count {count}\nlat_sum {total}\n"
    )


def test_histogram_delta_across_a_restart() -> None:
    plain = histogram_delta(histogram(4, 2.0, 3), histogram(6, 2.5, 5), "lat")
    assert (plain.count, plain.sum, plain.buckets) == (2, 0.5, {0.5: 2, float("inf"): 2})
    restarted = histogram_delta(histogram(4, 2.0, 3), histogram(1, 0.25, 1), "lat")
    assert (restarted.count, restarted.sum, restarted.buckets) == (
        1,
        0.25,
        {0.5: 1, float("inf"): 1},
    )
    # A bucket that went down is a restart even when the count did not (yet) show it.
    odd = histogram_delta(histogram(4, 2.0, 3), histogram(4, 3.0, 1), "lat")
    assert (odd.count, odd.buckets[0.5]) == (4, 1)


def test_a_watch_uses_its_background_scrapes_for_resets() -> None:
    values = iter([5.0, 9.0, 0.0, 2.0])
    current = [5.0]

    def text() -> str:
        return f'# TYPE jobs_total counter\njobs_total{{route="/a"}} {current[0]}\n'

    metrics = Metrics()
    watch = metrics.watch(TextSource(text))
    scraper = watch.start_background(interval=0.001)
    for value in values:
        current[0] = value
        seen = len(watch.timeline())
        while not any(
            s.snapshot.value("jobs_total", {"route": "/a"}) == value
            for s in watch.timeline()[seen:]
        ):
            scraper._stop.wait(0.001)
    scraper.stop()
    # 5 -> 9 (+4), restart -> 0, -> 2 (+2): the two-point answer would be 0.
    assert watch.counter_delta("jobs_total", {"route": "/a"}) == 6
    metrics.close()


def test_an_assertion_parses_only_the_families_it_names() -> None:
    registry = CollectorRegistry()
    jobs = Counter("jobs_total", "Jobs.", ["route"], registry=registry)
    for i in range(50):
        Counter(f"noise{i}_total", "Noise.", ["x"], registry=registry).labels("y").inc()
    metrics = Metrics()
    watch = metrics.watch(TextSource(lambda: generate_latest(registry).decode()))
    jobs.labels("/a").inc()
    watch.assert_counter_delta("jobs_total", {"route": "/a"}, delta=1)
    assert watch.before._families is None  # the baseline was never parsed whole
    assert set(watch.before.view(["jobs_total"]).families) == {"jobs_total"}
    with pytest.raises(AssertionError, match="has no label 'rout'"):
        watch.assert_counter_delta("jobs_total", {"rout": "/a"}, delta=0)
    with pytest.raises(AssertionError, match=r"did you mean jobs_total"):
        watch.assert_counter_delta("job_total", delta=0)
    metrics.close()


def _leaky_and_noisy(registry: CollectorRegistry):
    requests = Counter("req_total", "Requests.", ["route", "worker"], registry=registry)
    calls = [0]

    def noisy(path: str) -> None:
        # Another worker's traffic on the same service: new series, not ours.
        calls[0] += 1
        requests.labels("/items", f"gw{calls[0]}").inc()
        requests.labels("<unmatched>", "me").inc()

    def leaky(path: str) -> None:
        requests.labels(path, "me").inc()

    return noisy, leaky


def test_cardinality_scoped_to_labels_ignores_other_series() -> None:
    registry = CollectorRegistry()
    noisy, leaky = _leaky_and_noisy(registry)

    def scrape() -> Snapshot:
        return Snapshot.from_text(generate_latest(registry).decode())

    with pytest.raises(CardinalityError, match="created 20 new series"):
        assert_cardinality_stable(scrape, noisy, n=20)  # unscoped: the noise counts
    assert assert_cardinality_stable(scrape, noisy, n=20, labels={"worker": "me"}, shared=True)
    with pytest.raises(CardinalityError, match="holding a path"):
        # Leaked series carry the random paths: they count whatever the scope.
        assert_cardinality_stable(scrape, leaky, n=5, labels={"worker": "other"}, shared=True)


def test_an_unscoped_check_on_a_shared_service_is_refused() -> None:
    registry = CollectorRegistry()
    Counter("req_total", "Requests.", registry=registry)
    sent: list[str] = []
    with pytest.raises(CardinalityError, match="cannot be trusted on svc: other xdist workers"):
        assert_cardinality_stable(
            lambda: Snapshot.from_text(generate_latest(registry).decode()),
            sent.append,
            shared=True,
            source="svc",
        )
    assert sent == []  # refused before any request
    metrics = Metrics(shared_urls=True)
    try:
        assert not metrics.watch(registry).shared  # only URLs are taken for shared
        assert metrics.watch(registry, shared=True).shared
    finally:
        metrics.close()


def test_an_unscoped_delta_on_a_shared_service_says_why() -> None:
    registry = CollectorRegistry()
    jobs = Counter("jobs_total", "Jobs.", ["route"], registry=registry)
    metrics = Metrics()
    try:
        watch = metrics.watch(registry, shared=True)
        jobs.labels("/a").inc()
        with pytest.raises(AssertionError, match="without labels cannot be trusted on registry"):
            watch.assert_counter_delta("jobs_total", delta=1, aggregate=True)
        with pytest.raises(AssertionError, match=r"mark the test @pytest\.mark\.stack_exclusive"):
            watch.counter_delta("jobs_total")
        watch.assert_counter_delta("jobs_total", {"route": "/a"}, delta=1)
    finally:
        metrics.close()
