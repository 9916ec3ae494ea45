"""The gateway against a direct-to-upstream baseline and LiteLLM's proxy, one stub upstream.

Run:  .venv/bin/python benchmarks/bench_gateway.py [--quick] [--rounds 3] [--seconds 3]
          [--litellm-venv /tmp/litellm-venv [--install-litellm]] [--workers N]

One invocation starts, each as its own process:

- the in-repo OpenAI-compatible stub upstream (``tests/stubs/inference.py``, access log
  off), which every target talks to;
- the gateway (``python -m services.gateway``) pointed at it, with a fresh data dir and
  a ``viewer`` key, its per-key limits raised so that they never refuse the load;
- LiteLLM's proxy from a separate venv when ``--litellm-venv`` holds one (
  ``--install-litellm`` creates it with ``python -m venv`` and ``pip install
  'litellm[proxy]'``); otherwise it is left out and the reason printed;
- the load generator: a separate process (aiohttp, uvloop when installed), so its work
  does not run on the event loop of the script that starts and stops everything.

Targets:

- ``direct``: the stub itself, the baseline (no auth: the auth row is its ``/v1/models``);
- ``gateway``: chat ``model=chat``; the auth path is ``GET /v1/backends`` with the key
  (key lookup, permission check, audit-free read);
- ``litellm``: chat to a model mapped to the stub; auth path ``GET /v1/models`` with
  its master key.

Scenarios, each at 1, 16 and 64 concurrent clients (keep-alive connections, closed
loop: a client sends its next request when the previous answer is complete):

- ``chat``: non-streaming ``POST /v1/chat/completions``, latency to the last byte;
- ``stream``: the same with ``"stream": true``, time to the first body chunk (TTFC);
  the stream is read to its ``[DONE]``;
- ``auth``: the authenticated read described above.

Rounds interleave: every round runs every (scenario, clients) cell for every target in
turn (the order of the targets rotates per round), so a burst of load from other work
on the machine hits all targets alike. Each cell warms up before it measures. A table
cell is the requests per second over all rounds and the p50/p95/p99 of all latencies;
``load`` is the 1-minute load average when the cell finished (mean over rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
STUB_MODEL = "stub-model:latest"
LITELLM_MODEL = "stub-model"
LITELLM_KEY = "sk-bench-master-key"
CLIENTS = (1, 16, 64)
SCENARIOS = ("chat", "stream", "auth")
MESSAGES = [{"role": "user", "content": "say hello to the benchmark"}]


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    model: str
    auth_path: str
    headers: dict[str, str]


@dataclass
class Cell:
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    first_error: str = ""

    def add(self, result: dict[str, Any]) -> None:
        self.ok += result["ok"]
        self.errors += result["errors"]
        self.seconds += result["seconds"]
        self.latencies.extend(result["latencies"])
        self.loads.append(os.getloadavg()[0])
        self.first_error = self.first_error or result["first_error"]


# --------------------------------------------------------------------------------------
# The load generator (a separate process: ``--load-worker``, one JSON spec per stdin line)


async def _one_cell(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    scenario = spec["scenario"]
    clients = spec["clients"]
    headers = {"Content-Type": "application/json", **spec["headers"]}
    url = spec["base"] + ("/v1/chat/completions" if scenario != "auth" else spec["auth_path"])
    payload: dict[str, Any] = {"model": spec["model"], "messages": MESSAGES, "max_tokens": 16}
    plain_body = json.dumps(payload).encode()
    stream_body = json.dumps({**payload, "stream": True}).encode()
    # "soak" (bench_soak.py): a fixed number of chat requests, every stream_every-th streamed.
    stream_every = spec.get("stream_every", 0)
    budget = spec.get("requests")
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0, "issued": 0}
    first_error: list[str] = []
    measuring = False

    def failed(why: str) -> None:
        if measuring:
            counts["errors"] += 1
            if not first_error:
                first_error.append(why)

    async def request(session: aiohttp.ClientSession) -> None:
        counts["issued"] += 1
        streamed = scenario == "stream" or (
            scenario == "soak" and stream_every > 0 and counts["issued"] % stream_every == 0
        )
        body = stream_body if streamed else plain_body
        started = time.perf_counter()
        if scenario == "auth":
            async with session.get(url, headers=headers) as response:
                data = await response.read()
                done = time.perf_counter()
        else:
            async with session.post(url, data=body, headers=headers) as response:
                if streamed and response.status == 200:
                    first = await response.content.readany()
                    done = time.perf_counter()  # time to the first chunk
                    data = first + await response.read()
                    if b"[DONE]" not in data:
                        failed(f"stream ended without [DONE]: {data[-200:]!r}")
                        return
                else:
                    data = await response.read()
                    done = time.perf_counter()
        if response.status != 200:
            failed(f"HTTP {response.status}: {data[:200]!r}")
            return
        if measuring:
            counts["ok"] += 1
            latencies.append(done - started)

    def more(until: list[float]) -> bool:
        if budget is not None and measuring:
            return counts["issued"] < budget
        return time.perf_counter() < until[0]

    async def client(session: aiohttp.ClientSession, until: list[float]) -> None:
        while more(until):
            try:
                await request(session)
            except (TimeoutError, aiohttp.ClientError) as exc:
                failed(f"{type(exc).__name__}: {exc}")

    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm-up: every client opens its connection and the target's caches fill.
        until = [time.perf_counter() + spec.get("warmup", 0.0)]
        await asyncio.gather(*(client(session, until) for _ in range(clients)))
        measuring = True
        counts["issued"] = 0
        started = time.perf_counter()
        until = [started + spec.get("seconds", 0.0)]
        await asyncio.gather(*(client(session, until) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "ok": counts["ok"],
        "errors": counts["errors"],
        "seconds": elapsed,
        "latencies": latencies,
        "first_error": first_error[0] if first_error else "",
    }


def load_worker() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the plain asyncio loop: slower, still correct
        pass
    for line in sys.stdin:
        result = asyncio.run(_one_cell(json.loads(line)))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


class LoadGenerator:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--load-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(spec) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the load generator process died; see its stderr above")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


# --------------------------------------------------------------------------------------
# The processes under test


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} was not ready at {url} after {timeout:.0f} s")


@contextmanager
def running(
    argv: list[str],
    env: dict[str, str],
    ready_url: str,
    what: str,
    timeout: float = 60,
    cwd: Path = ROOT,
) -> Iterator[subprocess.Popen[bytes]]:
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        yield from _until_stopped(process, log, ready_url, what, timeout)


def _until_stopped(
    process: subprocess.Popen[bytes], log: Any, ready_url: str, what: str, timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    try:
        try:
            wait_ready(ready_url, process, what, timeout)
        except RuntimeError:
            log.seek(0)
            sys.stderr.write(log.read()[-4000:].decode(errors="replace"))
            raise
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the group: uvicorn workers too
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def base_env() -> dict[str, str]:
    # Only what the services need from this environment: the caller's AI_SUITE_* or
    # GATEWAY_* settings must not change what is measured.
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV")
    return {name: os.environ[name] for name in keep if name in os.environ}


def make_key(data_dir: Path) -> str:
    sys.path.insert(0, str(ROOT))
    from services.security.db import Database
    from services.security.keys import KeyStore
    from services.security.migrations import migrate

    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(data_dir / "security.db")
    try:
        migrate(db)
        return KeyStore(db).create_key("bench", "viewer").key
    finally:
        db.close()


def stub_upstream(port: int) -> Any:
    """The stub upstream on ``port`` as a running process (a context manager)."""
    argv = [sys.executable, "-m", "tests.stubs.inference", "--port", str(port)]
    return running(
        [*argv, "--accept-any-model", "--no-access-log"],
        base_env(),
        f"http://127.0.0.1:{port}/health",
        "the stub upstream",
    )


def gateway_env(data_dir: Path, port: int, upstream: str, workers: int) -> dict[str, str]:
    return {
        **base_env(),
        "AI_SUITE_DATA_DIR": str(data_dir),
        "AI_SUITE_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "INFERENCE_URL": upstream,
        "INFERENCE_CHAT_MODEL": STUB_MODEL,
        "INFERENCE_CODE_MODEL": STUB_MODEL,
        # The per-key limits protect a shared gateway; here they would only measure
        # themselves refusing (one key, 64 clients).
        "GATEWAY_RATE_LIMIT_PER_MINUTE": str(10**9),
        "GATEWAY_MAX_CONCURRENT_PER_KEY": "1000",
        "GATEWAY_WORKERS": str(workers),
    }


def litellm_config(path: Path, upstream: str) -> None:
    path.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": LITELLM_MODEL,
                        "litellm_params": {
                            "model": f"openai/{STUB_MODEL}",
                            "api_base": upstream,
                            "api_key": "unused",
                        },
                    }
                ],
                "general_settings": {"master_key": LITELLM_KEY},
                "litellm_settings": {"telemetry": False},
            }
        )
    )


def ensure_litellm(venv: Path, install: bool) -> Path | None:
    """The venv's ``litellm`` script, installing it if asked; None (reason printed) if absent."""
    script = venv / "bin" / "litellm"
    if script.exists():
        return script
    if not install:
        print(f"LiteLLM left out: {script} does not exist (add --install-litellm to create it)")
        return None
    print(f"creating {venv} and installing litellm[proxy] from PyPI ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "litellm[proxy]"],
        check=True,
    )
    return script


# --------------------------------------------------------------------------------------
# The report


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def report(
    results: dict[tuple[str, int, str], Cell],
    scenarios: tuple[str, ...],
    targets: list[Target],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"python {platform.python_version()}, {os.cpu_count()} cores, {args.rounds} round(s) x "
        f"{args.seconds:g} s per cell, gateway workers: {args.workers}",
        "",
        "| scenario | clients | target | req/s | p50 ms | p95 ms | p99 ms | errors | load |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        for clients in CLIENTS:
            for target in targets:
                cell = results[(scenario, clients, target.name)]
                values = sorted(cell.latencies)
                rate = cell.ok / cell.seconds if cell.seconds else 0.0
                label = {"chat": "chat", "stream": "stream TTFC", "auth": "auth path"}[scenario]
                lines.append(
                    f"| {label} | {clients} | {target.name} | {rate:,.0f} "
                    f"| {percentile(values, 0.50) * 1000:.2f} "
                    f"| {percentile(values, 0.95) * 1000:.2f} "
                    f"| {percentile(values, 0.99) * 1000:.2f} "
                    f"| {cell.errors} | {statistics.fmean(cell.loads):.1f} |"
                )
    errors = [f"{key}: {cell.first_error}" for key, cell in results.items() if cell.first_error]
    if errors:
        lines += ["", "first error per cell:", *errors]
    return "\n".join(lines)


def stop_children_on_sigterm() -> None:
    """SIGTERM (``timeout``, a CI runner) exits through the ExitStack, which stops the
    stub, the gateways and LiteLLM instead of leaving them running."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1.5 s per cell")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per cell")
    parser.add_argument("--workers", type=int, default=1, help="GATEWAY_WORKERS of the gateway")
    parser.add_argument("--litellm-venv", type=Path, default=None)
    parser.add_argument("--install-litellm", action="store_true")
    parser.add_argument(
        "--only", choices=list(SCENARIOS), action="append", help="run only these scenarios"
    )
    parser.add_argument("--no-direct", action="store_true", help="leave out the baseline")
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        metavar="CHECKOUT",
        help="also measure the gateway of another checkout with its own .venv, in the same"
        " rounds (target 'gateway@base'), e.g. the main branch: git archive main | tar -x -C"
        " /tmp/base && (cd /tmp/base && uv sync --frozen); '--compare .' with --compare-env"
        " measures a setting",
    )
    parser.add_argument(
        "--compare-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the --compare gateway only (repeatable)",
    )
    parser.add_argument("--load-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_worker:
        load_worker()
        return 0
    stop_children_on_sigterm()
    if args.quick:
        args.rounds, args.seconds = 1, 1.5
    scenarios = tuple(s for s in SCENARIOS if not args.only or s in args.only)

    litellm = None
    if args.litellm_venv is not None:
        litellm = ensure_litellm(args.litellm_venv.resolve(), args.install_litellm)
    else:
        print("LiteLLM left out: no --litellm-venv given")

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-gateway-")))
        stub_port, gateway_port = free_port(), free_port()
        stub_base = f"http://127.0.0.1:{stub_port}"
        python = sys.executable
        stack.enter_context(stub_upstream(stub_port))
        key = make_key(tmp / "data")
        stack.enter_context(
            running(
                [python, "-m", "services.gateway"],
                gateway_env(tmp / "data", gateway_port, f"{stub_base}/v1", args.workers),
                f"http://127.0.0.1:{gateway_port}/health",
                "the gateway",
            )
        )
        targets = [
            Target(
                "gateway",
                f"http://127.0.0.1:{gateway_port}",
                "chat",
                "/v1/backends",
                {"Authorization": f"Bearer {key}"},
            )
        ]
        if args.compare is not None:
            checkout = args.compare.resolve()
            base_port = free_port()
            base_key = make_key(tmp / "base-data")
            stack.enter_context(
                running(
                    [str(checkout / ".venv" / "bin" / "python"), "-m", "services.gateway"],
                    {
                        **gateway_env(
                            tmp / "base-data", base_port, f"{stub_base}/v1", args.workers
                        ),
                        **dict(item.split("=", 1) for item in args.compare_env),
                    },
                    f"http://127.0.0.1:{base_port}/health",
                    f"the gateway of {checkout}",
                    cwd=checkout,
                )
            )
            targets.append(
                Target(
                    "gateway@base",
                    f"http://127.0.0.1:{base_port}",
                    "chat",
                    "/v1/backends",
                    {"Authorization": f"Bearer {base_key}"},
                )
            )
        if not args.no_direct:
            targets.insert(0, Target("direct", stub_base, STUB_MODEL, "/v1/models", {}))
        if litellm is not None:
            litellm_port = free_port()
            config = tmp / "litellm.json"
            litellm_config(config, f"{stub_base}/v1")
            env = {**base_env(), "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR"}
            stack.enter_context(
                running(
                    [
                        str(litellm),
                        "--config",
                        str(config),
                        "--port",
                        str(litellm_port),
                        "--host",
                        "127.0.0.1",
                        "--num_workers",
                        "1",
                    ],
                    env,
                    f"http://127.0.0.1:{litellm_port}/health/liveliness",
                    "LiteLLM's proxy",
                    timeout=180,
                )
            )
            targets.append(
                Target(
                    "litellm",
                    f"http://127.0.0.1:{litellm_port}",
                    LITELLM_MODEL,
                    "/v1/models",
                    {"Authorization": f"Bearer {LITELLM_KEY}"},
                )
            )
        generator = LoadGenerator()
        stack.callback(generator.close)
        results = {(s, c, t.name): Cell() for s in scenarios for c in CLIENTS for t in targets}
        warmup = min(0.5, args.seconds / 3)
        for round_number in range(args.rounds):
            order = targets[round_number % len(targets) :] + targets[: round_number % len(targets)]
            for scenario in scenarios:
                for clients in CLIENTS:
                    for target in order:
                        spec = {
                            "scenario": scenario,
                            "clients": clients,
                            "base": target.base,
                            "model": target.model,
                            "auth_path": target.auth_path,
                            "headers": target.headers,
                            "seconds": args.seconds,
                            "warmup": warmup,
                        }
                        results[(scenario, clients, target.name)].add(generator.run(spec))
            print(f"round {round_number + 1}/{args.rounds} done", flush=True)
        print()
        print(report(results, scenarios, targets, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
