"""``pytest -m unit`` never imports the integration and e2e modules, and still selects
exactly the tests the expression names (the root conftest run in a scratch project)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parents[3] / "conftest.py"
BOOBY_TRAP = 'raise RuntimeError("this module was imported")\n'


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makeini(
        "[pytest]\naddopts = --strict-markers -p no:cacheprovider\n"
        "markers =\n    unit\n    integration\n    e2e\n    slow\n"
    )
    for folder in ("unit", "integration", "e2e"):
        pytester.path.joinpath("tests", folder).mkdir(parents=True)
    pytester.path.joinpath("tests/unit/test_u.py").write_text("def test_u():\n    pass\n")
    pytester.path.joinpath("tests/integration/test_i.py").write_text(
        "import pytest\n\n@pytest.mark.slow\ndef test_i():\n    pass\n"
    )
    pytester.path.joinpath("tests/e2e/test_e.py").write_text(BOOBY_TRAP)
    return pytester


def test_unit_run_does_not_import_other_folders(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-m", "unit")
    result.assert_outcomes(passed=1)


def test_another_marker_keeps_its_folders_collected(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-m", "unit or slow", "tests/unit", "tests/integration")
    result.assert_outcomes(passed=2)
    trapped = project.runpytest_subprocess("-m", "unit or slow")
    trapped.assert_outcomes(errors=1, passed=0)
    trapped.stdout.fnmatch_lines(["*this module was imported*"])
