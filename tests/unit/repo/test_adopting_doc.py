"""docs/testing/adopting.md shows the adopter example as it is, and its claims name real tests."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "testing" / "adopting.md"
EXAMPLE = ROOT / "examples" / "adopter"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [
        body for lang, body in FENCE.findall(DOC.read_text(encoding="utf-8")) if lang == language
    ]


def code(line: str) -> str:
    """The line without a trailing comment (the doc may comment differently)."""
    return line.split("  #", 1)[0].rstrip()


def test_the_stack_file_shown_is_the_examples() -> None:
    (shown,) = [b for b in blocks("yaml") if "services:" in b]
    actual = (EXAMPLE / "stack.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(shown) == yaml.safe_load(actual)


def test_every_python_line_shown_is_in_the_examples_tests() -> None:
    sources = [p.read_text(encoding="utf-8") for p in (EXAMPLE / "tests").glob("*.py")]
    lines = {code(line) for source in sources for line in source.splitlines()}
    for block in blocks("python"):
        for line in block.splitlines():
            if code(line).strip():
                assert (
                    code(line) in lines
                ), f"adopting.md shows {line!r}, not in examples/adopter/tests"


def test_the_pytest_settings_shown_are_the_examples() -> None:
    (shown,) = [b for b in blocks("toml") if "[tool.pytest.ini_options]" in b]
    actual = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))
    assert tomllib.loads(shown) == {"tool": {"pytest": actual["tool"]["pytest"]}}


def test_backed_by_names_real_tests() -> None:
    text = DOC.read_text(encoding="utf-8")
    names = set(re.findall(r"`(test_\w+)`", text))
    assert names, "adopting.md backs no claim with a test"
    sources = "\n".join(
        p.read_text(encoding="utf-8")
        for folder in (ROOT / "tests", EXAMPLE / "tests")
        for p in folder.rglob("test_*.py")
    )
    missing = sorted(n for n in names if not re.search(rf"^\s*def {n}\(", sources, re.M))
    assert not missing, f"adopting.md names tests that do not exist: {missing}"
    for path in re.findall(r"`(tests/[\w/.-]+)`", text):
        assert (ROOT / path).exists(), f"adopting.md names {path}, which does not exist"
