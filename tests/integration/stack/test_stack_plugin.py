"""The stack plugin as users run it: pytester projects with a real stack file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support import echo_service
from tests.support.processes import assert_all_gone

pytestmark = pytest.mark.timeout(120)


def stack_yaml(env: dict[str, str] | None = None, name: str = "demo") -> str:
    env_lines = "".join(f"      {k}: '{v}'\n" for k, v in (env or {}).items())
    return (
        f"name: {name}\n"
        "services:\n"
        "  web:\n"
        "    command: ['{python}', 'service.py', '{port}']\n"
        "    ready: {http: /health, timeout: 20}\n"
        f"    env:\n      PID_LOG: '{{root}}/pids.log'\n{env_lines}"
        "  api:\n"
        "    command: ['{python}', 'service.py', '{port}']\n"
        "    depends_on: [web]\n"
        "    env:\n      PID_LOG: '{root}/pids.log'\n      WEB_URL: '{url:web}'\n"
    )


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".py", service=echo_service.SOURCE)
    pytester.makefile(".yaml", stack=stack_yaml())
    pytester.makeini(
        "[pytest]\nstack_file = stack.yaml\nstack_state_dir = .state\n"
        "stack_artifacts = artifacts\n"
    )
    return pytester


def pids(pytester: pytest.Pytester) -> list[int]:
    path = pytester.path / "pids.log"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args)


def test_services_start_in_order_and_stop_at_the_end(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import httpx
        def test_urls(stack):
            assert httpx.get(stack.url("web") + "/x").status_code == 200
            assert httpx.get(stack.url("api") + "/x").status_code == 200
            assert stack.services == ["web", "api"]
        """)
    result = run(project)
    result.assert_outcomes(passed=1)
    started = pids(project)
    assert len(started) == 2
    assert_all_gone(started)
    assert (project.path / "artifacts" / "demo" / "web.log").read_text().count("GET") >= 1


def test_one_stack_for_all_xdist_workers(project: pytest.Pytester) -> None:
    project.makepyfile(
        "\n".join(f"def test_{i}(stack):\n    assert stack.url('web')\n" for i in range(6))
    )
    result = run(project, "-n", "2")
    result.assert_outcomes(passed=6)
    assert len(pids(project)) == 2  # web and api, once each
    assert_all_gone(pids(project))


def test_service_dying_at_start_fails_fast_with_its_log(project: pytest.Pytester) -> None:
    project.makefile(".yaml", stack=stack_yaml({"DIE_AT_START": "1"}))
    project.makepyfile("def test_x(stack):\n    pass\n")
    result = run(project)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*web exited with code 7 before it was ready*", "*fatal: cannot open the frobnicator*"]
    )


def test_failing_test_report_shows_service_log_lines(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import httpx
        def test_fails(stack):
            httpx.get(stack.url("web") + "/during-the-test")
            assert False, "boom"
        """)
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*stack log: web*", "*GET /during-the-test*"])


def test_fault_injection(project: pytest.Pytester) -> None:
    project.makepyfile("""
        def test_faults(stack):
            assert stack.is_healthy("web")
            stack.kill("web")
            assert not stack.is_healthy("web")
            stack.start("web")
            assert stack.wait_healthy("web") >= 0
            stack.stop("api")
            assert not stack.is_healthy("api")
            stack.restart("api")
            assert stack.is_healthy("api")
            stack.pause("web")
            assert not stack.is_healthy("web")
            stack.resume("web")
            stack.wait_healthy("web", timeout=10)
        """)
    result = run(project)
    result.assert_outcomes(passed=1)
    assert_all_gone(pids(project))


def test_no_stack_file_skips_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(stack):\n    pass\n")
    result = run(pytester, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no stack file configured*"])


def test_compose_backend_unavailable_skips_with_the_reason(project: pytest.Pytester) -> None:
    project.makepyfile("def test_x(stack):\n    pass\n")
    result = run(project, "-rs", "--stack-backend=compose")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*stack backend 'compose' unavailable*"])


def test_bad_backend_option_is_a_usage_error(project: pytest.Pytester) -> None:
    result = run(project, "--stack-backend=kubernetes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--stack-backend must be one of auto, local, compose*"])


def test_keep_reuses_a_matching_stack_and_recreates_a_changed_one(
    project: pytest.Pytester,
) -> None:
    project.makepyfile("def test_x(stack):\n    assert stack.is_healthy('web')\n")
    run(project, "--stack-keep").assert_outcomes(passed=1)
    first = pids(project)
    run(project, "--stack-keep").assert_outcomes(passed=1)
    assert pids(project) == first  # reused: nothing new started
    project.makefile(".yaml", stack=stack_yaml({"CHANGED": "yes"}))
    run(project, "--stack-keep").assert_outcomes(passed=1)
    assert len(pids(project)) == 4  # configuration changed: recreated
    assert_all_gone(first)
    run(project).assert_outcomes(passed=1)  # without keep: torn down at the end
    assert_all_gone(pids(project))


def test_kill_9_of_pytest_leaves_no_service(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import time
        def test_hangs(stack):
            open("ready.flag", "w").write("1")
            time.sleep(120)
        """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PYTEST_STACK_OWNER", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=project.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (project.path / "ready.flag").exists():
            assert time.monotonic() < deadline, "the test never started"
            assert process.poll() is None, "pytest exited early"
            time.sleep(0.1)
        started = pids(project)
        assert len(started) == 2
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert_all_gone(started)  # the reaper took them down
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    state_file = project.path / ".state" / "demo.json"
    deadline = time.monotonic() + 10
    while state_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not state_file.exists(), json.loads(state_file.read_text())
