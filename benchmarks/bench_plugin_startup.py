"""What the three plugins add to a pytest start that uses none of them.

Run: .venv/bin/python benchmarks/bench_plugin_startup.py [--runs 20]

Each run is ``python -m pytest --collect-only -q`` in an empty project (a fresh
process, so every import is paid): without our plugins, with all three, and with
each alone, interleaved so that load on a shared machine hits every variant alike.
No installed plugin is auto-loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD; ours come in by
``-p``): hypothesis, testcontainers and the rest cost the same with or without ours
and would only add noise. What each plugin imports at load is checked by
tests/integration/packaging/test_plugin_startup_imports.py.
Prints a markdown table of medians in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLUGINS = {
    "ai_suite_stack": "ai_suite_pytest.stack.plugin",
    "ai_suite_sqlite_reset": "ai_suite_pytest.sqlite_reset.plugin",
    "ai_suite_metrics": "ai_suite_pytest.metrics.plugin",
}
BASE = ["--collect-only", "-q", "-p", "no:cacheprovider"]


def load(*modules: str) -> list[str]:
    return [arg for module in modules for arg in ("-p", module)]


def time_run(project: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *BASE, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 5:  # 5: no tests collected, what an empty project gives
        raise SystemExit(f"pytest {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    variants = {
        "no plugin of ours": [],
        "all three plugins": load(*PLUGINS.values()),
        **{f"{name} alone": load(module) for name, module in PLUGINS.items()},
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        for args in variants.values():  # warm the OS file cache first
            time_run(project, args)
        for _ in range(runs):
            for name, args in variants.items():
                times[name].append(time_run(project, args))
    base = statistics.median(times["no plugin of ours"])
    print(f"python {platform.python_version()}, {platform.machine()}, runs per row: {runs}\n")
    print("| pytest --collect-only, empty project | median ms | p90 ms | added ms |")
    print("|---|---:|---:|---:|")
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        added = "" if name == "no plugin of ours" else f"{median - base:+.1f}"
        print(f"| {name} | {median:.1f} | {p90:.1f} | {added} |")


if __name__ == "__main__":
    main()
