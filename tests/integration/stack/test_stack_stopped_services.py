"""A service a test stopped stays stopped while another xdist worker attaches; starting a
running service is refused (a second process would outlive the run unrecorded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ai_suite_pytest.stack.backend import ServiceStartError
from ai_suite_pytest.stack.handle import Stack
from ai_suite_pytest.stack.manager import StackManager
from ai_suite_pytest.stack.spec import load_stack
from ai_suite_pytest.stack.state import current_process_identity

from tests.support import echo_service
from tests.support.processes import assert_all_gone

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    (tmp_path / "service.py").write_text(echo_service.SOURCE)
    path = tmp_path / "stack.yaml"
    path.write_text(
        "name: stopped\nservices:\n"
        "  web:\n    command: ['{python}', 'service.py', '{port}']\n"
        "    env: {PID_LOG: '{root}/web.pids'}\n"
        "  api:\n    command: ['{python}', 'service.py', '{port}']\n"
    )
    return path


def pids(spec_path: Path) -> list[int]:
    return [int(x) for x in (spec_path.parent / "web.pids").read_text().split()]


def test_a_worker_attaching_does_not_restart_what_a_test_killed(spec_path: Path) -> None:
    spec = load_stack(spec_path)
    owner = current_process_identity()
    controller = StackManager(spec, state_dir=spec_path.parent / ".state", owner=owner)
    try:
        stack = Stack(controller, controller.acquire())
        stack.kill("web")
        # Another process of the same run (an xdist worker) attaches meanwhile.
        worker = StackManager(spec, state_dir=spec_path.parent / ".state", owner=owner)
        attached = worker.acquire()
        assert "web" not in attached.state.processes
        assert len(pids(spec_path)) == 1  # not started again behind the test's back
        stack.start("web")
        with pytest.raises(ServiceStartError, match="web is already running"):
            stack.start("web")
        assert len(pids(spec_path)) == 2
    finally:
        controller.teardown()
        reaper = controller._reaper
        if reaper is not None:
            reaper.wait(timeout=30)  # it exits once the state file is gone
    assert_all_gone(pids(spec_path))
