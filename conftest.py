"""Repository-wide pytest configuration.

Markers follow the folder a test lives in, so ``pytest -m unit`` selects
exactly ``tests/unit`` and nobody has to remember to decorate a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# pytester drives the plugins of pytest_plugins/ as users run them.
pytest_plugins = ["pytester"]

ROOT = Path(__file__).parent
_FOLDER_MARKERS = {
    ROOT / "tests" / "unit": "unit",
    ROOT / "tests" / "integration": "integration",
    ROOT / "tests" / "e2e": "e2e",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path)
        for folder, marker in _FOLDER_MARKERS.items():
            if folder in path.parents:
                item.add_marker(getattr(pytest.mark, marker))
                break
