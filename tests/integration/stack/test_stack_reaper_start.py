"""A reaper that cannot start stops the run at once, with its output; nothing is started."""

from __future__ import annotations

from pathlib import Path

import pytest
from ai_suite_pytest.stack import manager as manager_module
from ai_suite_pytest.stack.manager import ReaperStartError, StackManager
from ai_suite_pytest.stack.spec import load_stack
from ai_suite_pytest.stack.state import StackState, current_process_identity


def test_a_reaper_that_cannot_start_fails_the_start_naming_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An interpreter that dies at once stands for a broken install (a missing module).
    broken = tmp_path / "python"
    broken.write_text(
        "#!/bin/sh\necho 'No module named ai_suite_pytest.stack.reaper' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    monkeypatch.setattr(manager_module.sys, "executable", str(broken))
    started = tmp_path / "started"
    (tmp_path / "stack.yaml").write_text(
        "name: demo\nservices:\n"
        f"  web:\n    command: [touch, {started}]\n    ready: {{http: /, timeout: 5}}\n"
    )
    manager = StackManager(
        load_stack(tmp_path / "stack.yaml"),
        state_dir=tmp_path / ".state",
        owner=current_process_identity(),
    )

    with pytest.raises(ReaperStartError, match=r"No module named ai_suite_pytest\.stack\.reaper"):
        manager.acquire(backend="local")

    assert not started.exists()  # no service runs without its watchdog
    assert StackState.load(manager.state_file) is None  # no half-made stack to attach to
