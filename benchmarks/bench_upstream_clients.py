"""The HTTP client for the gateway's inference requests: httpx, httpx2 and aiohttp.

Run:  .venv/bin/python benchmarks/bench_upstream_clients.py [--rounds 2] [--seconds 1.5]

Each client, configured as the gateway would (a pool of 64 connections, all kept alive,
HTTP/1.1, the answer opened as a stream and read chunk by chunk as the relay does),
sends chat requests to the stub upstream (``tests/stubs/inference.py``, its own process)
from 1, 16 and 64 concurrent tasks on one uvloop event loop, non-streaming and
streaming. The column that decides is the client's **CPU time per request** (user +
system time of this process over the requests it completed): the gateway shares its
cores with the upstream, so every millisecond the client spends is one the gateway does
not serve with. Requests per second are printed too but depend on the stub's share of
the CPU. Rounds interleave the clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gateway import STUB_MODEL, free_port, stub_upstream  # a sibling script

CLIENTS = ("httpx", "httpx2", "aiohttp")
CONCURRENCY = (1, 16, 64)
HEADERS = {"content-type": "application/json"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def open_client(kind: str, url: str) -> tuple[Callable[[bytes], Awaitable[None]], Any]:
    """A function sending one request and reading its answer to the end, and a closer."""
    if kind == "aiohttp":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))

        async def send_aiohttp(body: bytes) -> None:
            async with session.post(url, data=body, headers=HEADERS) as response:
                async for _ in response.content.iter_any():
                    pass

        return send_aiohttp, session.close
    if kind == "httpx2":
        import httpx2 as module
    else:
        module = httpx  # type: ignore[no-redef]
    client = module.AsyncClient(
        limits=module.Limits(max_connections=64, max_keepalive_connections=64), timeout=30
    )

    async def send_httpx(body: bytes) -> None:
        response = await client.send(
            client.build_request("POST", url, content=body, headers=HEADERS), stream=True
        )
        async for _ in response.aiter_raw():
            pass
        await response.aclose()

    return send_httpx, client.aclose


async def measure(
    kind: str, url: str, tasks: int, seconds: float, body: bytes
) -> tuple[float, float]:
    """(requests per second, CPU microseconds per request)."""
    send, close = await open_client(kind, url)
    done = 0

    async def loop(until: float, counting: bool) -> None:
        nonlocal done
        while time.perf_counter() < until:
            await send(body)
            done += counting

    await asyncio.gather(*(loop(time.perf_counter() + 0.3, False) for _ in range(tasks)))
    cpu, started = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(loop(started + seconds, True) for _ in range(tasks)))
    elapsed, used = time.perf_counter() - started, cpu_seconds() - cpu
    await close()
    return done / elapsed, used / max(done, 1) * 1e6


async def run(args: argparse.Namespace, url: str) -> None:
    payload = {"model": STUB_MODEL, "messages": [{"role": "user", "content": "say hello"}]}
    bodies = {
        "chat": json.dumps(payload).encode(),
        "stream": json.dumps({**payload, "stream": True}).encode(),
    }
    results: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for scenario, body in bodies.items():
            for tasks in CONCURRENCY:
                for kind in CLIENTS:
                    result = await measure(kind, url, tasks, args.seconds, body)
                    results.setdefault((scenario, tasks, kind), []).append(result)
    print(f"{args.rounds} round(s) x {args.seconds:g} s per cell; medians over rounds")
    print()
    print("| scenario | concurrent | client | req/s | client CPU µs/request |")
    print("|---|---:|---|---:|---:|")
    for (scenario, tasks, kind), values in results.items():
        rate = statistics.median(rate for rate, _ in values)
        cost = statistics.median(cost for _, cost in values)
        print(f"| {scenario} | {tasks} | {kind} | {rate:,.0f} | {cost:,.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    with ExitStack() as stack:
        port = free_port()
        stack.enter_context(stub_upstream(port))
        uvloop.run(run(args, f"http://127.0.0.1:{port}/v1/chat/completions"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
