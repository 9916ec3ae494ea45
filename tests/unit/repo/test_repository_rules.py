"""Rules about the repository itself: CI cannot hide failures, docs match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.gateway.registry import load_registry

ROOT = Path(__file__).resolve().parents[3]
HIDING = re.compile(r"\|\|\s*(true|echo|:)\b|continue-on-error|set \+e")


# The GitHub workflows: tests/unit/repo/test_workflows.py.
@pytest.mark.parametrize("path", [".ci/run", "Makefile"])
def test_ci_never_hides_a_failure(path: str) -> None:
    text = (ROOT / path).read_text()
    assert not HIDING.search(text), f"{path} hides failures: {HIDING.search(text)}"


def test_ci_script_is_strict_and_runs_make_test() -> None:
    text = (ROOT / ".ci/run").read_text()
    assert "set -euo pipefail" in text
    assert "make test" in text


def test_example_model_registry_loads() -> None:
    registry = load_registry(ROOT / "docs/examples/models.yaml", None)
    assert [m.name for m in registry.list_models()] == ["chat", "code"]
    assert registry.passthrough_backend == "ollama"


def test_no_host_paths_are_hard_coded() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("services", "pytest_plugins")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"[\"'](/mnt/|/home/|/Users/|[A-Z]:\\\\)", path.read_text())
    ]
    assert offenders == []


# docs/configuration.md is generated from the settings classes: tests/unit/cli/test_configdoc.py.


def test_predecessor_failure_map_names_real_tests() -> None:
    """docs/predecessor-failures.md must point at tests that exist."""
    doc = (ROOT / "docs/predecessor-failures.md").read_text()
    missing = []
    for path, test in re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?", doc):
        file = ROOT / path
        if not file.exists():
            missing.append(path)
        elif test and f"def {test}(" not in file.read_text():
            missing.append(f"{path}::{test}")
    assert missing == []


def test_make_test_enforces_the_coverage_gate() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["coverage"]["report"]["fail_under"] == 80
    assert config["tool"]["coverage"]["run"]["branch"] is True
    makefile = (ROOT / "Makefile").read_text()
    test_recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "--cov" in test_recipe
    assert "--cov-fail-under" not in test_recipe  # nothing may lower the gate
