"""Leak check: the gateway's RSS and thread count over a long run of chat requests.

Run:  .venv/bin/python benchmarks/bench_soak.py [--requests 100000] [--clients 64]
          [--samples 20] [--stream-every 4]

Starts the stub upstream and the gateway as in ``bench_gateway.py`` (same processes, same
settings), then sends ``--requests`` chat requests from ``--clients`` concurrent clients
(every ``--stream-every``-th one streamed; the load generator is a separate process), in
``--samples`` equal batches. After each batch it prints the gateway's RSS, thread count
and open file descriptors (psutil). The run is bounded by the request count.

Reading it: after warm-up (the first batches fill caches, pools and the allocator's
arenas) RSS and threads should stay flat; growth proportional to the requests served is
a leak. The script prints the growth from the end of the first batch to the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gateway import (  # a sibling script, not a package
    LoadGenerator,
    free_port,
    gateway_env,
    make_key,
    running,
    stop_children_on_sigterm,
    stub_upstream,
)

MiB = 1024 * 1024


def snapshot(process: psutil.Process) -> tuple[float, int, int]:
    """RSS in MiB, threads and open file descriptors of the gateway (its children too)."""
    processes = [process, *process.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in processes) / MiB
    threads = sum(p.num_threads() for p in processes)
    fds = sum(p.num_fds() for p in processes)
    return rss, threads, fds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--stream-every", type=int, default=4, help="0: no streams")
    parser.add_argument("--workers", type=int, default=1, help="GATEWAY_WORKERS")
    args = parser.parse_args()
    stop_children_on_sigterm()
    batch = max(1, args.requests // args.samples)

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-soak-")))
        stub_port, gateway_port = free_port(), free_port()
        stub_base = f"http://127.0.0.1:{stub_port}"
        stack.enter_context(stub_upstream(stub_port))
        key = make_key(tmp / "data")
        gateway = stack.enter_context(
            running(
                [sys.executable, "-m", "services.gateway"],
                gateway_env(tmp / "data", gateway_port, f"{stub_base}/v1", args.workers),
                f"http://127.0.0.1:{gateway_port}/health",
                "the gateway",
            )
        )
        watched = psutil.Process(gateway.pid)
        generator = LoadGenerator()
        stack.callback(generator.close)
        spec = {
            "scenario": "soak",
            "clients": args.clients,
            "base": f"http://127.0.0.1:{gateway_port}",
            "model": "chat",
            "auth_path": "/v1/backends",
            "headers": {"Authorization": f"Bearer {key}"},
            "requests": batch,
            "stream_every": args.stream_every,
        }
        rss, threads, fds = snapshot(watched)
        print(
            f"python {sys.version.split()[0]}, {psutil.cpu_count()} cores, {args.clients} clients"
        )
        print(f"start: rss {rss:.1f} MiB, threads {threads}, fds {fds}")
        print()
        print("| requests | req/s | errors | RSS MiB | threads | fds |")
        print("|---:|---:|---:|---:|---:|---:|")
        first: tuple[float, int] | None = None
        sent = 0
        started = time.perf_counter()
        while sent < args.requests:
            result = generator.run({**spec, "requests": min(batch, args.requests - sent)})
            sent += result["ok"] + result["errors"]
            rss, threads, fds = snapshot(watched)
            first = first or (rss, threads)
            rate = result["ok"] / result["seconds"] if result["seconds"] else 0.0
            print(
                f"| {sent:,} | {rate:,.0f} | {result['errors']} | {rss:.1f} | {threads} | {fds} |",
                flush=True,
            )
            if result["first_error"]:
                print(f"  first error: {result['first_error']}")
        elapsed = time.perf_counter() - started
        print()
        print(
            f"{sent:,} requests in {elapsed:.0f} s; after the first batch: RSS "
            f"{first[0]:.1f} -> {rss:.1f} MiB ({(rss - first[0]) / first[0] * 100:+.1f}%), "
            f"threads {first[1]} -> {threads}"
            if first
            else "no request sent"
        )
        print(json.dumps({"rss_mib": round(rss, 1), "threads": threads}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
