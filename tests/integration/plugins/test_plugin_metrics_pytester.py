"""The metrics plugin as a user meets it: the fixture, failure output, contract, coverage."""

from __future__ import annotations

import pytest

CONTRACT = """
metrics:
  shop_orders_total:
    type: counter
    labels:
      status: [ok, failed]
  shop_basket_size:
    type: gauge
"""

APP = """
from prometheus_client import CollectorRegistry, Counter, Gauge

def make():
    registry = CollectorRegistry()
    orders = Counter("shop_orders_total", "Orders.", ["status"], registry=registry)
    basket = Gauge("shop_basket_size", "Items in the basket.", registry=registry)
    return registry, orders, basket
"""


def test_fixture_assertions_and_nearest_series_on_failure(
    lone_pytester: pytest.Pytester, metrics_args: list[str]
) -> None:
    lone_pytester.makepyfile(shop_inner=APP)
    lone_pytester.makepyfile(test_inner="""
        from shop_inner import make

        def test_passes(metrics):
            registry, orders, basket = make()
            shop = metrics.watch(registry)
            orders.labels("ok").inc()
            shop.assert_counter_delta("shop_orders_total", {"status": "ok"}, delta=1)
            basket.set(3)
            shop.assert_gauge("shop_basket_size", value=3)

        def test_fails_with_nearest(metrics):
            registry, orders, basket = make()
            shop = metrics.watch(registry)
            orders.labels("failed").inc(2)
            shop.assert_counter_delta("shop_orders_total", {"status": "ok"}, delta=1)
        """)
    result = lone_pytester.runpytest(*metrics_args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*expected shop_orders_total{'status': 'ok'} to grow by 1, it grew by 0",
            "*nearest series:",
            '*shop_orders_total{status="failed"} = 2 (before: absent)',
        ]
    )
    # __tracebackhide__: the report points at the test, not into the plugin
    assert "assertions.py" not in result.stdout.str()


def test_contract_and_coverage_floor(
    lone_pytester: pytest.Pytester, metrics_args: list[str]
) -> None:
    lone_pytester.makefile(".yaml", contract_inner=CONTRACT)
    lone_pytester.makeini("[pytest]\nmetrics_contract = contract_inner.yaml\n")
    lone_pytester.makepyfile(shop_inner=APP)
    lone_pytester.makepyfile(test_inner="""
        from shop_inner import make

        def test_orders(metrics, metrics_contract):
            registry, orders, basket = make()
            shop = metrics.watch(registry, service="shop")
            shop.assert_contract()
            orders.labels("ok").inc()
        """)
    passing = lone_pytester.runpytest(*metrics_args, "--metrics-coverage-min=50")
    passing.assert_outcomes(passed=1)
    assert passing.ret == 0
    passing.stdout.fnmatch_lines(
        [
            "*metrics coverage (shop): 1/2 contract metrics exercised (50.0%)",
            "*not exercised: shop_basket_size",
            "*shop_orders_total: label values never exercised: status=failed",
        ]
    )
    failing = lone_pytester.runpytest(*metrics_args, "--metrics-coverage-min=75")
    failing.assert_outcomes(passed=1)
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    failing.stdout.fnmatch_lines(["*FAIL: metrics coverage 50.0% is below the floor of 75%*"])


def test_contract_violation_report(lone_pytester: pytest.Pytester, metrics_args: list[str]) -> None:
    lone_pytester.makefile(".yaml", contract_inner=CONTRACT)
    lone_pytester.makepyfile(test_inner="""
        from prometheus_client import CollectorRegistry, Counter

        def test_contract(metrics):
            registry = CollectorRegistry()
            Counter("shop_orders_total", "Orders.", ["state"], registry=registry).labels("x").inc()
            Counter("shop_refunds_total", "Refunds.", registry=registry)
            metrics.watch(registry).assert_contract()
        """)
    result = lone_pytester.runpytest(*metrics_args, "--metrics-contract=contract_inner.yaml")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the exposition breaks the metrics contract (3 problem(s)):" in out
    assert "[labels] shop_orders_total: labels ['state'], declared ['status']" in out
    assert "[missing] shop_basket_size: declared gauge, not exposed" in out
    assert "[undeclared] shop_refunds_total: counter not in " in out


def test_inert_without_use_and_clear_errors_without_contract(
    lone_pytester: pytest.Pytester, metrics_args: list[str]
) -> None:
    lone_pytester.makepyfile(test_inner="""
        def test_plain():
            pass

        def test_wants_contract(metrics_contract):
            pass
        """)
    result = lone_pytester.runpytest(*metrics_args)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*no metrics contract configured*"])
    assert "metrics coverage" not in result.stdout.str()


@pytest.mark.parametrize(
    ("ini", "args", "message"),
    [
        (
            "",
            ["--metrics-coverage-min=120", "--metrics-contract=contract_inner.yaml"],
            "ERROR: --metrics-coverage-min='120': expected a percentage from 0 to 100*",
        ),
        (
            "metrics_coverage_min = lots\nmetrics_contract = contract_inner.yaml",
            [],
            "ERROR: ini metrics_coverage_min='lots': expected a percentage from 0 to 100*",
        ),
        (
            "",
            ["--metrics-coverage-min=50"],
            "ERROR: --metrics-coverage-min / metrics_coverage_min=50 needs a metrics contract*",
        ),
        (
            "metrics_contract = no/such.yaml",
            [],
            "ERROR: ini metrics_contract='no/such.yaml': no such file (*no/such.yaml); give the "
            "metrics contract's path relative to the rootdir*",
        ),
        (
            "",
            ["--metrics-contract=broken_inner.yaml"],
            "ERROR: --metrics-contract='broken_inner.yaml': x_total: only counters, and every "
            "counter, end in _total; fix the file (format: docs/testing/metrics.md*",
        ),
        (
            "",
            ["--metrics-contract=unparsable_inner.yaml"],
            "ERROR: --metrics-contract='unparsable_inner.yaml': cannot read metrics contract*",
        ),
    ],
)
def test_bad_configuration_stops_the_run_at_start(
    lone_pytester: pytest.Pytester,
    metrics_args: list[str],
    ini: str,
    args: list[str],
    message: str,
) -> None:
    lone_pytester.makefile(".yaml", contract_inner=CONTRACT)
    lone_pytester.makefile(".yaml", broken_inner="metrics:\n  x_total: {type: gauge}\n")
    lone_pytester.makefile(".yaml", unparsable_inner="metrics: [\n")
    lone_pytester.makeini(f"[pytest]\n{ini}\n")
    lone_pytester.makepyfile(test_inner="def test_never_runs():\n    raise AssertionError\n")
    result = lone_pytester.runpytest(*metrics_args, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "test_never_runs" not in result.stdout.str()


def test_cardinality_under_xdist_is_scoped_or_refused(
    lone_pytester: pytest.Pytester, metrics_args: list[str]
) -> None:
    lone_pytester.makeini(
        "[pytest]\nmarkers =\n    stack_exclusive: runs while no other test uses the stack\n"
    )
    lone_pytester.makepyfile(test_inner="""
        import pytest
        from prometheus_client import CollectorRegistry, Counter, start_http_server

        @pytest.fixture
        def service():
            registry = CollectorRegistry()
            hits = Counter("hits_total", "Hits.", ["route", "worker"], registry=registry)
            server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
            yield hits, f"http://127.0.0.1:{server.server_address[1]}"
            server.shutdown()
            server.server_close()

        def traffic(hits):
            calls = []
            def request(path):
                calls.append(path)
                hits.labels("/elsewhere", f"other{len(calls)}").inc()  # another worker's
                hits.labels("<unmatched>", "me").inc()
            return request

        def test_unscoped_is_refused(metrics, service):
            hits, url = service
            metrics.watch(url).assert_cardinality_stable(traffic(hits), n=3)

        def test_scoped_passes(metrics, service):
            hits, url = service
            watch = metrics.watch(url)
            watch.assert_cardinality_stable(traffic(hits), n=3, labels={"worker": "me"})

        @pytest.mark.stack_exclusive
        def test_exclusive_counts_everything(metrics, service):
            hits, url = service
            metrics.watch(url).assert_cardinality_stable(traffic(hits), n=3)
        """)
    result = lone_pytester.runpytest_subprocess(*metrics_args, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    assert "FAILED test_inner.py::test_unscoped_is_refused" in out
    assert "cannot be trusted on http://127.0.0.1:" in out
    assert "mark the test @pytest.mark.stack_exclusive" in out
    # Exclusive: nothing else runs against the stack, so every new series is this test's.
    assert "FAILED test_inner.py::test_exclusive_counts_everything" in out
    assert "3 requests to random unknown paths" in out
