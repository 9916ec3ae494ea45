"""Loading the plugins costs a pytest start that uses none of them almost nothing.

Issue 12: "Heavy imports happen when a fixture is used". What a plugin imports when
pytest loads it is checked here (a behaviour that can regress); how long the start
takes is measured by benchmarks/bench_plugin_startup.py (docs/benchmarks.md), never
asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Third-party or C-extension modules that only a used fixture needs.
HEAVY = ("yaml", "psutil", "filelock", "httpx", "pydantic", "prometheus_client", "sqlite3")
PLUGINS = {
    "sqlite_reset": "ai_suite_pytest.sqlite_reset.plugin",
    "stack": "ai_suite_pytest.stack.plugin",
    "metrics": "ai_suite_pytest.metrics.plugin",
}

# Runs pytest in-process on an empty project, then prints what is imported.
PROBE = """
import json, sys, pytest
code = pytest.main(sys.argv[1:])
print(json.dumps({"exit": int(code), "modules": sorted(sys.modules)}))
"""


def loaded_modules(tmp_path: Path, modules: list[str]) -> set[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    args = ["--collect-only", "-q", "-p", "no:cacheprovider"]
    for module in modules:
        args += ["-p", module]
    # Only the plugins under test: other installed plugins (hypothesis, testcontainers...)
    # import heavy modules of their own.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert last.startswith("{"), result.stdout + result.stderr
    report = json.loads(last)
    # 5: no tests collected, the expected outcome in an empty project.
    assert report["exit"] == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout + result.stderr
    loaded = set(report["modules"])
    assert set(modules) <= loaded, "the plugins under test were not loaded"
    return loaded


def heavy_imports_of(tmp_path: Path, modules: list[str]) -> list[str]:
    """Heavy modules loading ``modules`` adds to the same start without them.

    Compared with a start without the plugins, not with nothing: whatever the caller's
    environment loads into every interpreter (coverage's subprocess hook imports sqlite3
    under `make test`) is not the plugins' doing.
    """
    (tmp_path / "bare").mkdir()
    (tmp_path / "plugins").mkdir()
    baseline = loaded_modules(tmp_path / "bare", [])
    loaded = loaded_modules(tmp_path / "plugins", modules)
    return sorted((loaded - baseline) & set(HEAVY))


@pytest.mark.parametrize("plugin", ["sqlite_reset", "stack", "metrics"])
def test_loading_a_plugin_imports_nothing_heavy(tmp_path: Path, plugin: str) -> None:
    heavy = heavy_imports_of(tmp_path, [PLUGINS[plugin]])
    assert not heavy, f"{plugin} imports {heavy} at load"


def test_loading_all_three_plugins_imports_nothing_heavy(tmp_path: Path) -> None:
    heavy = heavy_imports_of(tmp_path, list(PLUGINS.values()))
    assert not heavy, f"the plugins import {heavy} at load"


def test_the_sqlite_reset_core_is_imported_by_the_first_fixture(tmp_path: Path) -> None:
    """Lazy, and still complete: the core arrives with the fixture that needs it."""
    (tmp_path / "schema.sql").write_text("CREATE TABLE t (x INTEGER);", encoding="utf-8")
    (tmp_path / "test_db.py").write_text("def test_db(sqlite_db): pass\n", encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nsqlite_reset_schema = schema.sql\n", encoding="utf-8"
    )
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            PLUGINS["sqlite_reset"],
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["exit"] == pytest.ExitCode.OK, result.stdout + result.stderr
    assert {"sqlite3", "ai_suite_pytest.sqlite_reset.core"} <= set(report["modules"])
