"""Cost of one metrics-checked test against the number of series in the exposition.

Run: .venv/bin/python benchmarks/bench_metrics.py [--runs 30] [--rounds 5]

A test as the ``metrics`` fixture runs it against a URL: ``metrics.watch(url)``
(the baseline scrape), one ``assert_counter_delta`` (a fresh scrape), and the
watch's close (a last scrape, diffed for metrics coverage). The plugin's own work
is what that costs on the test's side: reading three responses, parsing, diffing.
The service's work is left out: a separate process serves texts rendered in
advance (``generate_latest`` once per size; its time is its own column).

Both paths run in the same process, interleaved, on the same texts:

- old: what the plugin did before issue 12: every scrape parsed whole by
  ``prometheus_client.parser``, then the assertion and the coverage diff;
- new: the plugin as it is (``Metrics``/``Watch`` over ``UrlSource``): scrapes keep
  their text, the assertion parses only its family's matching lines, the coverage
  diff parses only the families whose lines changed.

Each cell is the median over ``--rounds`` rounds of the median of ``--runs`` tests.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ai_suite_pytest.metrics import CoverageData, Metrics, assert_counter_delta, parse_text
from ai_suite_pytest.metrics.coverage import changed_series
from ai_suite_pytest.metrics.exposition import Snapshot, parse_text_prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

SIZES = (100, 1_000, 2_000, 10_000)
# Answers /metrics with the files given, in turn: a test's three scrapes get the
# baseline, then the text after its request, twice. HTTP/1.1, so the watch's
# connection is kept alive between them, as a service's would be.
SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
bodies = [open(path, "rb").read() for path in sys.argv[1:]]
served = [0]

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK wait

    def do_GET(self):
        if self.path == "/reset":
            served[0] = 0
            body = b"ok"
        else:
            body = bodies[served[0] % len(bodies)]
            served[0] += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


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


def median_ms(runs: int, action: Callable[[], object], clock=time.perf_counter) -> float:
    samples = []
    for _ in range(runs):
        started = clock()
        action()
        samples.append((clock() - started) * 1000)
    return statistics.median(samples)


class Server:
    def __init__(self, before: bytes, after: bytes, workdir: Path) -> None:
        paths = []
        for name, body in (("before", before), ("after", after), ("again", after)):
            path = workdir / f"{name}.txt"
            path.write_bytes(body)
            paths.append(str(path))
        self.process = subprocess.Popen(  # nosec B603: our own interpreter and script
            [sys.executable, "-c", SERVER, *paths], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"
        self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def get(self, path: str = "/metrics") -> str:
        self._conn.request("GET", path)
        return self._conn.getresponse().read().decode()

    def reset(self) -> None:
        self.get("/reset")

    def close(self) -> None:
        self._conn.close()
        self.process.terminate()
        self.process.wait(timeout=10)


def old_test(server: Server) -> None:
    """Three scrapes parsed whole by prometheus_client, the assertion, the coverage diff."""
    before = parse_text_prometheus_client(server.get())
    after = parse_text_prometheus_client(server.get())
    assert_counter_delta(before, after, "bench_requests_total", {"route": "/r1"}, delta=1)
    last = parse_text_prometheus_client(server.get())
    CoverageData().record(before, last, "bench")


def new_test(url: str) -> None:
    """The plugin as a test meets it: watch, assert, close (coverage recorded)."""
    metrics = Metrics(coverage=CoverageData())
    watch = metrics.watch(url, service="bench")
    watch.assert_counter_delta("bench_requests_total", {"route": "/r1"}, delta=1)
    assert metrics.close() == []


def row(series: int, runs: int, rounds: int, workdir: Path) -> tuple[str, float]:
    registry, counter = registry_with(series)
    before_text = generate_latest(registry)
    counter.labels("/r1", "200").inc()
    after_text = generate_latest(registry)
    server = Server(before_text, after_text, workdir)
    text = after_text.decode()
    lazy_before = Snapshot.from_text(before_text.decode())
    old_before, old_after = parse_text(before_text.decode()), parse_text(text)
    cells: dict[str, list[float]] = {}

    def measure(column: str, action: Callable[[], object], clock=time.perf_counter) -> None:
        cells.setdefault(column, []).append(median_ms(runs, action, clock))

    try:
        for _ in range(rounds):
            measure("expose", lambda: generate_latest(registry))
            server.reset()
            measure("get", server.get)
            measure("parse_old", lambda: parse_text_prometheus_client(text))
            measure("parse_new", lambda: parse_text(text))
            measure(
                "view",
                lambda: Snapshot.from_text(text).view(["bench_requests_total"], {"route": "/r1"}),
            )
            measure("diff_old", lambda: changed_series(old_before, old_after))
            measure("diff_new", lambda: changed_series(lazy_before, Snapshot.from_text(text)))
            # The same tests timed twice: wall clock, and CPU time of this process only
            # (the plugin's own work: the server is another process, waiting is not work).
            for suffix, clock in (("", time.perf_counter), ("_cpu", time.process_time)):
                server.reset()
                measure(f"test_old{suffix}", lambda: old_test(server), clock)
                server.reset()
                measure(f"test_new{suffix}", lambda: new_test(server.url), clock)
    finally:
        server.close()
    med = {column: statistics.median(values) for column, values in cells.items()}
    line = (
        f"| {parse_text(text).series_count():,} | {len(after_text) / 1024:,.0f} | "
        f"{med['expose']:.2f} | {med['get']:.2f} | {med['parse_old']:.2f} | "
        f"{med['parse_new']:.2f} | {med['view']:.3f} | {med['diff_old']:.2f} | "
        f"{med['diff_new']:.2f} | {med['test_old']:.2f} | {med['test_new']:.2f} | "
        f"{med['test_old_cpu']:.2f} | **{med['test_new_cpu']:.2f}** | "
        f"{med['test_old_cpu'] / med['test_new_cpu']:.0f}x |"
    )
    return line, med["test_new_cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="tests per round and cell")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args()
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load}; {args.rounds} rounds x {args.runs} runs per cell\n"
    )
    print(
        "| series | KiB | expose (service, excluded) | HTTP GET | parse whole, "
        "prometheus_client | parse whole, ours | parse one family's matching lines | "
        "coverage diff, old | coverage diff, new | per test wall, old | per test wall, new | "
        "plugin's own work (CPU) per test, old | plugin's own work (CPU) per test, new | "
        "speed-up (CPU) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as workdir:
        for series in args.sizes:
            line, _ = row(series, args.runs, args.rounds, Path(workdir))
            print(line, flush=True)


if __name__ == "__main__":
    main()
