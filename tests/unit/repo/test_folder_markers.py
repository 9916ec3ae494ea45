"""The root conftest: folder markers, and folders no ``-m`` expression can select are skipped."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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
