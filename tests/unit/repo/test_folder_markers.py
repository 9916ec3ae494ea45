"""The root conftest: folder markers, folders no ``-m`` expression can select are skipped,
and how many xdist workers ``-n auto`` starts."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

# Loaded by path: every conftest is a module named "conftest" to Python.
_SPEC = importlib.util.spec_from_file_location(
    "root_conftest", Path(__file__).resolve().parents[3] / "conftest.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
root_conftest = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(root_conftest)
folder_can_match = root_conftest.folder_can_match


@pytest.mark.parametrize(
    ("markexpr", "folder", "expected"),
    [
        ("unit", "unit", True),
        ("unit", "integration", False),
        ("unit", "e2e", False),
        ("not unit", "unit", False),
        ("not unit", "e2e", True),
        ("unit or integration", "integration", True),
        ("unit or integration", "e2e", False),
        ("not e2e and not integration", "unit", True),
        ("not e2e and not integration", "integration", False),
        # another marker may sit on any test: its folder must be collected
        ("unit or stack_exclusive", "e2e", True),
        ("e2e and not stack_exclusive", "e2e", True),
        ("e2e and not stack_exclusive", "unit", False),
        ("stack_exclusive and not stack_exclusive", "unit", False),
        # marker arguments cannot be judged from the folder: collect
        ("timeout(seconds=300)", "e2e", True),
        # a bad expression is left for pytest to report
        ("unit and", "e2e", True),
    ],
)
def test_folder_can_match(markexpr: str, folder: str, expected: bool) -> None:
    assert folder_can_match(markexpr, folder) is expected


def _workers(args: list[str], invocation_dir: Path) -> int:
    config = SimpleNamespace(args=args, invocation_params=SimpleNamespace(dir=invocation_dir))
    return root_conftest.pytest_xdist_auto_num_workers(config)


@pytest.mark.parametrize(
    ("args", "parallel"),
    [
        (["tests"], True),  # a bare `pytest` (testpaths)
        (["tests/unit", "tests/integration"], True),
        (["tests/e2e/"], True),
        (["tests/unit/rag"], False),  # one folder: starting workers costs more
        (["tests/unit", "tests/unit/core/test_settings.py"], False),
        (["tests/unit/core/test_settings.py::test_defaults"], False),
        (["tests/unit::whatever"], False),
        (["does/not/exist"], False),
    ],
)
def test_auto_workers_for_whole_suites_only(
    args: list[str], parallel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    repo = Path(__file__).resolve().parents[3]
    assert _workers(args, repo) == (3 if parallel else 0)


def test_auto_workers_none_on_one_cpu_and_the_override_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = Path(__file__).resolve().parents[3]
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert _workers(["tests"], repo) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert _workers(["tests"], repo) == 0
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")
    assert _workers(["tests/unit/core/test_settings.py"], repo) == 5
