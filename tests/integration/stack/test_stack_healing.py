"""Faults heal: `stack.fault` restores on exit, and whatever a test leaves stopped, killed or
paused is restored (and reported) before the next test; the `stack_exclusive` lock spans
setup, call and teardown, so an autouse reset cannot wipe data under another worker's test;
`fingerprint:` globs make a kept stack restart when the code they match changes."""

from __future__ import annotations

import pytest

from tests.support import echo_service
from tests.support.processes import assert_all_gone

pytestmark = pytest.mark.timeout(180)

STACK = """
name: heal
services:
  web:
    command: ["{python}", service.py, "{port}"]
    env: {PID_LOG: "{root}/web.pids"}
    ready: {http: /health, timeout: 20}
  worker:
    command: ["{python}", -c, "import os, time; print('up', os.getpid(), flush=True);
      time.sleep(300)"]
    port: none
    ready: {log: "^up ", timeout: 20}
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".py", service=echo_service.SOURCE)
    pytester.makefile(".yaml", stack=STACK)
    pytester.makeini("[pytest]\nstack_file = stack.yaml\nstack_state_dir = .state\n")
    return pytester


def web_pids(pytester: pytest.Pytester) -> list[int]:
    path = pytester.path / "web.pids"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_fault_context_manager_restores_the_service(project: pytest.Pytester) -> None:
    project.makepyfile(test_fault="""
        import pytest
        @pytest.mark.parametrize("kind", ["kill", "stop", "pause"])
        def test_fault(stack, kind):
            with stack.fault("web", kind):
                assert not stack.is_healthy("web")
            assert stack.is_healthy("web")  # started and ready again, or resumed
        def test_restores_even_when_the_block_raises(stack):
            with pytest.raises(RuntimeError):
                with stack.fault("worker", "kill"):
                    raise RuntimeError("the test's own failure")
            assert stack.is_healthy("worker")
        """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert "stack: restored" not in result.stdout.str()  # nothing was left down
    assert len(web_pids(project)) == 3  # first start, then once after kill and stop
    assert_all_gone(web_pids(project))


def test_what_a_test_leaves_down_is_restored_and_reported(project: pytest.Pytester) -> None:
    project.makepyfile(test_leaves="""
        import pytest
        @pytest.mark.stack_exclusive
        def test_1_kills_web(stack):
            stack.kill("web")
        @pytest.mark.stack_exclusive
        def test_2_pauses_worker(stack):
            stack.pause("worker")
        def test_3_stops_without_the_marker(stack):
            stack.stop("web")
        def test_4_everything_is_back(stack):
            assert stack.is_healthy("web") and stack.is_healthy("worker")
        """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=junit.xml")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "stack: restored web (stopped or killed) after test_leaves.py::test_1_kills_web"
            " left it down",
            "stack: restored worker (paused) after test_leaves.py::test_2_pauses_worker left*",
            "stack: restored web (stopped or killed) after"
            " test_leaves.py::test_3_stops_without_the_marker left it down",
        ]
    )
    junit = (project.path / "junit.xml").read_text()
    assert '<property name="stack_restored" value="web (stopped or killed)" />' in junit
    assert len(web_pids(project)) == 3
    assert_all_gone(web_pids(project))


def test_a_process_that_died_by_itself_is_restored_too(project: pytest.Pytester) -> None:
    project.makepyfile(test_dies="""
        import psutil
        def test_1_web_crashes(stack):
            process = psutil.Process(int(open("web.pids").read().split()[0]))
            process.kill()
            process.wait(10)
        def test_2_web_is_back(stack):
            assert stack.is_healthy("web")
        """)
    # Both tests in one worker, in order; the summary line comes from the controller.
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist=loadfile")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["stack: restored web (exited) after *test_1_web_crashes*"])


RACE_TESTS = """
import sqlite3, time
import pytest

def rows(stack):
    with sqlite3.connect(stack.data_dir / "app.db", timeout=30) as conn:
        return conn.execute("SELECT name FROM items").fetchall()

@pytest.fixture(autouse=True)
def fresh_db({reset_fixture}):
    # The service's database back to empty before each test (the issue's autouse reset).
    stack = {reset_fixture}
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(stack.data_dir / "app.db", timeout=30) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (name TEXT)")
        conn.execute("DELETE FROM items")
    yield
    time.sleep(0.05)  # a teardown that takes a moment: still inside the lock

{marker}
@pytest.mark.parametrize("i", range(8))
def test_insert_then_read(stack, i):
    with sqlite3.connect(stack.data_dir / "app.db", timeout=30) as conn:
        conn.execute("INSERT INTO items VALUES (?)", (f"item-{{i}}",))
    time.sleep(0.1)  # another worker's setup would wipe the table right here
    assert rows(stack) == [(f"item-{{i}}",)]
"""


@pytest.mark.parametrize(
    ("reset_fixture", "marker"),
    [
        ("stack", "@pytest.mark.stack_exclusive"),  # the marker on the tests
        ("stack_exclusive", ""),  # the fixture, requested by the reset itself
    ],
    ids=["marker", "fixture"],
)
def test_exclusive_lock_spans_setup_and_teardown_under_xdist(
    project: pytest.Pytester, reset_fixture: str, marker: str
) -> None:
    project.makepyfile(test_race=RACE_TESTS.format(reset_fixture=reset_fixture, marker=marker))
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=8)


def test_fingerprint_globs_restart_a_kept_stack_when_code_changes(
    project: pytest.Pytester,
) -> None:
    (project.path / "app").mkdir()
    (project.path / "app" / "code.py").write_text("VERSION = 1\n")
    project.makefile(".yaml", stack=STACK + 'fingerprint: ["app/**/*.py"]\n')
    project.makepyfile("def test_x(stack):\n    assert stack.is_healthy('web')\n")
    project.runpytest_subprocess("--stack-keep").assert_outcomes(passed=1)
    first = web_pids(project)
    project.runpytest_subprocess("--stack-keep").assert_outcomes(passed=1)
    assert web_pids(project) == first  # nothing changed: reused
    (project.path / "app" / "code.py").write_text("VERSION = 2\n")
    project.runpytest_subprocess("--stack-keep").assert_outcomes(passed=1)
    assert len(web_pids(project)) == 2  # the code changed: restarted
    assert_all_gone(first)
    project.runpytest_subprocess().assert_outcomes(passed=1)  # without keep: torn down
    assert_all_gone(web_pids(project))
