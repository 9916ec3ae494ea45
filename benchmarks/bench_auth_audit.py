"""The authenticated path and audited tool calls, before and after issue 16's changes.

One invocation runs two builds of the services side by side, each as real uvicorn
processes on their own data directory: the baseline (``--baseline``, default the
merge-base with ``main``: the code as it was) and this checkout. Rounds interleave
(old, new, new, old, ...) so the shared machine's noise falls on both alike:

- ``GET /v1/backends`` on the gateway (authenticate + permission check, no upstream) at
  1 and 16 clients;
- ``POST /tools/read_file/call`` on the MCP server (REST) at 16 clients: rate limits,
  permission check, an intent row before the tool runs and an outcome row after.

The load generator is a small asyncio HTTP/1.1 keep-alive client in this process (no
httpx: its own cost would dominate a 1 ms request), the same for both builds. Every
answer must be a 200, and after the MCP rounds each build's audit log must hold an
intent and an outcome row for every call made, or the run fails.

    .venv/bin/python benchmarks/bench_auth_audit.py [--rounds 3] [--seconds 4]

Prints req/s and p50/p95/p99 per build, the new/old ratios, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"

CREATE_KEY = """
import sys
from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import migrate
db = Database(sys.argv[1])
migrate(db)
print(KeyStore(db).create_key("bench", "developer").key)
db.close()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def baseline_tree(ref: str, into: Path) -> tuple[Path, str]:
    """The baseline's ``services`` package, extracted from git (no checkout, no worktree)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "services"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into, commit


def default_baseline() -> str:
    return subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class Build:
    name: str
    tree: Path
    data_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    key: str = ""
    gateway_port: int = 0
    mcp_port: int = 0

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GATEWAY_", "MCP_", "AI_SUITE_", "INFERENCE_", "RAG_"))
        }
        env.update(
            PYTHONPATH=str(self.tree),
            AI_SUITE_DATA_DIR=str(self.data_dir),
            AI_SUITE_HOST=HOST,
            AI_SUITE_LOG_LEVEL="INFO",  # the access log is part of the cost measured
            INFERENCE_URL=f"http://{HOST}:9/v1",  # /v1/backends never calls it
            MCP_WORKSPACE_ROOTS=str(self.data_dir / "workspace"),
            MCP_RATE_LIMIT_PER_MINUTE="100000000",
            MCP_MAX_CONCURRENT_PER_KEY="1024",
        )
        return env

    def start(self) -> None:
        (self.data_dir / "workspace").mkdir(parents=True)
        (self.data_dir / "workspace" / "notes.txt").write_text("hello from the benchmark\n" * 8)
        self.key = subprocess.run(
            [sys.executable, "-c", CREATE_KEY, str(self.data_dir / "security.db")],
            cwd=self.tree,
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        self.gateway_port, self.mcp_port = free_port(), free_port()
        for module, port_var, port in (
            ("services.gateway", "GATEWAY_PORT", self.gateway_port),
            ("services.mcp", "MCP_PORT", self.mcp_port),
        ):
            log = (self.data_dir / f"{module}.log").open("w")
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", module],
                    cwd=self.tree,
                    env={**self.env(), port_var: str(port)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for port in (self.gateway_port, self.mcp_port):
            wait_healthy(port, self)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(30)

    def audit_rows(self) -> tuple[int, int]:
        conn = sqlite3.connect(self.data_dir / "security.db")
        try:
            rows = conn.execute(
                "SELECT outcome, COUNT(*) FROM audit_log WHERE action = 'tool:read_file'"
                " GROUP BY outcome"
            ).fetchall()
        finally:
            conn.close()
        counts = dict(rows)
        return counts.get("started", 0), counts.get("ok", 0)


def wait_healthy(port: int, build: Build) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in build.procs):
            raise SystemExit(f"{build.name}: a service exited; see {build.data_dir}/*.log")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2):  # nosec B310
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{build.name}: port {port} not healthy after 60 s")


@dataclass
class Scenario:
    name: str
    clients: int
    method: str
    path: str
    body: bytes = b""

    def port(self, build: Build) -> int:
        return build.gateway_port if self.name.startswith("gateway") else build.mcp_port

    def request(self, build: Build) -> bytes:
        head = (
            f"{self.method} {self.path} HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Authorization: Bearer {build.key}\r\n"
        )
        if self.body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
        return (head + "\r\n").encode() + self.body


async def one_client(
    port: int, request: bytes, until: float, latencies: list[float], statuses: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses.append(int(head.split(b" ", 2)[1]))
    finally:
        writer.close()


async def load(scenario: Scenario, build: Build, seconds: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    statuses: list[int] = []
    request = scenario.request(build)
    # A short warm-up fills the caches and opens connections; not counted.
    warm_until = time.perf_counter() + 0.5
    await asyncio.gather(
        *(
            one_client(scenario.port(build), request, warm_until, [], [])
            for _ in range(scenario.clients)
        )
    )
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(
            one_client(scenario.port(build), request, until, latencies, statuses)
            for _ in range(scenario.clients)
        )
    )
    elapsed = time.perf_counter() - started
    bad = [status for status in statuses if status != 200]
    if bad:
        raise SystemExit(f"{build.name} {scenario.name}: {len(bad)} answers not 200: {bad[:5]}")
    return latencies, elapsed


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    values = sorted(latencies)
    return {
        "rps": len(values) / elapsed,
        "p50": percentile(values, 0.50) * 1000,
        "p95": percentile(values, 0.95) * 1000,
        "p99": percentile(values, 0.99) * 1000,
        "n": len(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=None, help="git ref of the old code (merge-base)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="per round and build")
    args = parser.parse_args()

    scenarios = [
        Scenario("gateway GET /v1/backends", 1, "GET", "/v1/backends"),
        Scenario("gateway GET /v1/backends", 16, "GET", "/v1/backends"),
        Scenario(
            "mcp read_file (REST)",
            16,
            "POST",
            "/tools/read_file/call",
            b'{"arguments": {"path": "notes.txt"}}',
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-auth-audit-") as tmp:
        old_tree, commit = baseline_tree(args.baseline or default_baseline(), Path(tmp) / "old")
        builds = [
            Build(f"old ({commit})", old_tree, Path(tmp) / "data-old"),
            Build("new (this checkout)", ROOT, Path(tmp) / "data-new"),
        ]
        for build in builds:
            build.start()
        try:
            print(f"cpus={os.cpu_count()} python={sys.version.split()[0]}")
            results: dict[tuple[str, int, str], dict[str, float]] = {}
            calls = {build.name: 0 for build in builds}
            for scenario in scenarios:
                load_before = os.getloadavg()
                pooled: dict[str, tuple[list[float], float]] = {b.name: ([], 0.0) for b in builds}
                for round_no in range(args.rounds):
                    order = builds if round_no % 2 == 0 else builds[::-1]
                    for build in order:
                        latencies, elapsed = asyncio.run(load(scenario, build, args.seconds))
                        kept, total = pooled[build.name]
                        pooled[build.name] = (kept + latencies, total + elapsed)
                        if scenario.name.startswith("mcp"):
                            calls[build.name] += len(latencies)
                load_after = os.getloadavg()
                print(
                    f"\n{scenario.name}, {scenario.clients} client(s), {args.rounds} rounds x"
                    f" {args.seconds:g} s; load average {load_before[0]:.2f} -> {load_after[0]:.2f}"
                )
                for build in builds:
                    stats = summary(*pooled[build.name])
                    results[(scenario.name, scenario.clients, build.name)] = stats
                    print(
                        f"  {build.name:22} {stats['rps']:8.0f} req/s  p50 {stats['p50']:6.2f} ms"
                        f"  p95 {stats['p95']:6.2f} ms  p99 {stats['p99']:6.2f} ms"
                        f"  (n={stats['n']:.0f})"
                    )
                old = results[(scenario.name, scenario.clients, builds[0].name)]
                new = results[(scenario.name, scenario.clients, builds[1].name)]
                print(
                    f"  new/old: req/s x{new['rps'] / old['rps']:.2f},"
                    f" p95 x{new['p95'] / old['p95']:.2f}, p99 x{new['p99'] / old['p99']:.2f}"
                )
            for build in builds:
                # Warm-up calls are audited too: at least every measured call has its rows.
                started, ok = build.audit_rows()
                if started != ok or started < calls[build.name]:
                    raise SystemExit(
                        f"{build.name}: {started} intent and {ok} outcome rows for"
                        f" {calls[build.name]}+ calls: an audit row is missing"
                    )
                print(f"\n{build.name}: {started} read_file calls, each with intent + outcome row")
            print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            for build in builds:
                build.stop()


if __name__ == "__main__":
    main()
