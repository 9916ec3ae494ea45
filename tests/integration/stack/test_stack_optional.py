"""Optional stack services (`optional: true`): missing ones skip their tests, with the reason."""

from __future__ import annotations

import pytest

from tests.support import echo_service
from tests.support.processes import assert_all_gone

pytestmark = pytest.mark.timeout(120)


def stack_yaml(optional_env: str = "", extra: str = "") -> str:
    """``web`` (required), ``opt`` (optional) and ``dep`` (optional, needs ``opt``)."""
    return (
        "name: opt\n"
        "services:\n"
        "  web:\n"
        "    command: ['{python}', 'service.py', '{port}']\n"
        "    env: {PID_LOG: '{root}/web.pids'}\n"
        "  opt:\n"
        "    command: ['{python}', 'service.py', '{port}']\n"
        f"    env: {{PID_LOG: '{{root}}/opt.pids'{optional_env}}}\n"
        "    optional: true\n"
        "  dep:\n"
        "    command: ['{python}', 'service.py', '{port}']\n"
        "    env: {PID_LOG: '{root}/dep.pids', OPT_URL: '{url:opt}'}\n"
        "    depends_on: [opt]\n"
        "    optional: true\n" + extra
    )


USES_ALL = """
import httpx
def test_web(stack):
    assert httpx.get(stack.url("web") + "/x").status_code == 200
def test_opt(stack):
    assert httpx.get(stack.url("opt") + "/x").status_code == 200
def test_dep(stack):
    assert httpx.get(stack.url("dep") + "/x").status_code == 200
def test_dep_fault_injection(stack):
    stack.kill("dep")
    stack.start("dep")
    assert stack.is_healthy("dep")
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".py", service=echo_service.SOURCE)
    pytester.makeini("[pytest]\nstack_file = stack.yaml\nstack_state_dir = .state\n")
    pytester.makepyfile(test_uses=USES_ALL)
    return pytester


def pids(pytester: pytest.Pytester, name: str) -> list[int]:
    path = pytester.path / f"{name}.pids"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_missing_optional_service_skips_it_and_its_dependants_with_the_reason(
    project: pytest.Pytester,
) -> None:
    project.makefile(".yaml", stack=stack_yaml(", DIE_AT_START: '1'"))
    result = project.runpytest_subprocess("-rs")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*stack service 'opt' is unavailable: optional service opt exited with code 7*",
            "*stack service 'dep' is unavailable: dep depends on opt, which is unavailable*",
        ]
    )
    # Also said without -rs, once per service, with the reason's last line.
    result.stdout.fnmatch_lines(
        ["stack: optional service 'opt' was unavailable, its tests skipped: fatal: cannot*"]
    )
    # The reason carries the service's last log lines (the launcher's "run `make llama`").
    assert "fatal: cannot open the frobnicator" in result.stdout.str()
    assert len(pids(project, "opt")) == 1
    assert pids(project, "dep") == []  # never started
    assert_all_gone(pids(project, "web") + pids(project, "opt"))


def test_a_missing_optional_service_is_tried_once_per_run_whatever_the_workers(
    project: pytest.Pytester,
) -> None:
    project.makefile(".yaml", stack=stack_yaml(", DIE_AT_START: '1'"))
    result = project.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=1, skipped=3)
    assert len(pids(project, "opt")) == 1  # the second worker did not start it again


def test_optional_service_that_never_gets_ready_is_stopped_and_skipped(
    project: pytest.Pytester,
) -> None:
    never_ready = (
        "  slow:\n"
        "    command: ['{python}', '-c', 'import os, time; print(os.getpid(), flush=True);"
        " time.sleep(300)']\n"
        "    ready: {http: /health, timeout: 2}\n"
        "    optional: true\n"
    )
    project.makefile(".yaml", stack=stack_yaml(extra=never_ready))
    project.makepyfile(test_slow="def test_slow(stack):\n    stack.url('slow')\n")
    result = project.runpytest_subprocess("-rs", "test_slow.py")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*stack service 'slow' is unavailable: *not ready within 2s*"])
    log = project.path / ".state" / "opt" / "logs" / "slow.log"
    assert_all_gone([int(log.read_text().split()[0])])  # stopped, not left running


def test_present_optional_service_is_used(project: pytest.Pytester) -> None:
    project.makefile(".yaml", stack=stack_yaml())
    result = project.runpytest_subprocess("-rs")
    result.assert_outcomes(passed=4)
    assert len(pids(project, "dep")) == 2  # started, then killed and started again
    assert_all_gone(pids(project, "web") + pids(project, "opt") + pids(project, "dep"))


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "services:\n  a:\n    command: [x]\n    optional: maybe\n",
            "*services.a.optional: must be true or false, not 'maybe'; `optional: true` lets*",
        ),
        (
            "services:\n  a: {command: [x], optional: true}\n"
            "  b: {command: [x], depends_on: [a]}\n",
            "*service 'b' depends on optional *'a'*add `optional: true` to 'b'*",
        ),
    ],
)
def test_bad_optional_configuration_is_a_usage_error(
    project: pytest.Pytester, yaml_text: str, message: str
) -> None:
    project.makefile(".yaml", stack=yaml_text)
    result = project.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_stack_require_makes_a_missing_optional_service_fail_the_run(
    project: pytest.Pytester,
) -> None:
    project.makefile(".yaml", stack=stack_yaml(", DIE_AT_START: '1'"))
    result = project.runpytest_subprocess("--stack-require=dep", "test_uses.py::test_web")
    result.assert_outcomes(errors=1)  # dep needs opt: both became required
    result.stdout.fnmatch_lines(["*opt exited with code 7 before it was ready*"])
    assert_all_gone(pids(project, "web") + pids(project, "opt"))


def test_stack_require_of_an_unknown_service_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makefile(".yaml", stack=stack_yaml())
    result = project.runpytest_subprocess("--stack-require=web,lama")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot require *'lama'*: stack 'opt' has no such service*"])


def test_starting_a_running_service_is_refused_not_leaked(project: pytest.Pytester) -> None:
    project.makefile(".yaml", stack=stack_yaml())
    project.makepyfile(test_twice="""
        import pytest
        from ai_suite_pytest.stack.backend import ServiceStartError
        def test_twice(stack):
            with pytest.raises(ServiceStartError, match="web is already running"):
                stack.start("web")
        """)
    project.runpytest_subprocess("test_twice.py").assert_outcomes(passed=1)
    assert len(pids(project, "web")) == 1
    assert_all_gone(pids(project, "web") + pids(project, "opt") + pids(project, "dep"))
