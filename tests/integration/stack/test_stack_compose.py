"""The compose backend as users run it: pytester projects on a real Docker engine.

Needs a Docker engine, Compose v2 and the service image (docker/build-images.sh);
without them these tests are skipped with that reason. The last test needs none of
that: it checks the skip itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ai_suite_pytest.stack import docker_cli
from ai_suite_pytest.stack.backend import ServiceStartError
from ai_suite_pytest.stack.manager import StackManager
from ai_suite_pytest.stack.spec import load_stack
from ai_suite_pytest.stack.state import StackState, current_process_identity

from tests.support import echo_service
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(300)
IMAGE = os.environ.get("AI_SUITE_IMAGE", "local-ai-suite:latest")
# pytester gives runs a fresh HOME; the docker CLI must still find its plugins (compose).
DOCKER_CONFIG = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")


def _compose_unavailable() -> str | None:
    reason = docker_cli.unavailable_reason()
    if reason is None and docker_cli.missing_images([IMAGE]):
        reason = f"image {IMAGE} is not built (docker/build-images.sh)"
    return reason


needs_compose = pytest.mark.skipif(
    (_reason := _compose_unavailable()) is not None, reason=f"compose backend: {_reason}"
)

COMPOSE = {
    "services": {
        "web": {
            "image": IMAGE,
            "init": True,  # PID 1 that forwards SIGTERM: stop and restart are prompt
            "command": ["python", "-c", echo_service.SOURCE, "8000", "0.0.0.0"],
            "environment": {"DIE_AT_START": "${DIE_AT_START:-}"},
            "ports": ["127.0.0.1:${WEB_PORT:-18001}:8000"],
            "healthcheck": {
                "test": [
                    "CMD",
                    "python",
                    "-c",
                    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/h')",
                ],
                "interval": "1s",
                "retries": 60,
            },
        }
    }
}


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("DOCKER_CONFIG", DOCKER_CONFIG)
    pytester.makefile(".yml", compose=yaml.safe_dump(COMPOSE))
    pytester.makefile(
        ".yaml",
        stack=(
            "name: demo\ncompose_files: [compose.yml]\nservices:\n"
            "  web:\n    compose_service: web\n    ready: {http: /health, timeout: 60}\n"
        ),
    )
    pytester.makeini(
        "[pytest]\nstack_file = stack.yaml\nstack_state_dir = .state\n"
        "stack_artifacts = artifacts\nstack_backend = compose\n"
    )
    return pytester


def demo_containers(project: pytest.Pytester) -> list[str]:
    """This test's containers, in any state: those Compose made from its own Compose file.

    Scoped by Compose's working-directory label (the pytester directory): under xdist,
    other tests of this file run their own demo stacks at the same time, and their
    containers are not this test's leftovers.
    """
    label = f"com.docker.compose.project.working_dir={project.path.resolve()}"
    result = docker_cli.run_docker(
        ["ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}} ({{.Status}})"],
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def wait_until_no_containers(project: pytest.Pytester, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while demo_containers(project) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert demo_containers(project) == []


@needs_compose
def test_compose_stack_serves_reports_logs_and_leaves_nothing(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import httpx
        def test_ok(stack):
            assert stack.backend_name == "compose"
            assert stack.url("web").startswith("http://127.0.0.1:")
            assert httpx.get(stack.url("web") + "/ok").status_code == 200
        def test_fails(stack):
            httpx.get(stack.url("web") + "/marker-of-the-failing-test")
            assert False
        """)
    result = project.runpytest_subprocess("-p", "no:randomly", "-rs")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*stack log: web*", "*GET /marker-of-the-failing-test*"])
    assert "GET /ok" not in result.stdout.str().split("stack log: web", 1)[1]
    assert "GET /ok" in (project.path / "artifacts" / "demo" / "web.log").read_text()
    assert demo_containers(project) == []


@needs_compose
def test_fault_injection_on_containers(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import httpx, pytest
        def up(stack):
            try:
                return httpx.get(stack.url("web") + "/x", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        def test_faults(stack):
            url = stack.url("web")
            stack.pause("web")
            assert not up(stack)
            stack.resume("web")
            assert up(stack)
            stack.kill("web")
            assert not up(stack)
            stack.start("web")
            assert up(stack)
            stack.stop("web")
            assert not up(stack)
            stack.start("web")
            stack.restart("web")
            stack.wait_healthy("web")
            assert stack.url("web") == url  # the host port survives restarts
        """)
    result = project.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert demo_containers(project) == []


@needs_compose
def test_service_dying_at_start_fails_fast_with_its_exit_code_and_log(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIE_AT_START", "1")
    project.makepyfile("def test_x(stack):\n    pass\n")
    result = project.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*exit code 7*", "*fatal: cannot open the frobnicator*"])
    assert demo_containers(project) == []


@needs_compose
def test_optional_services_without_their_image_or_dying_are_skipped_not_fatal(
    project: pytest.Pytester,
) -> None:
    """An explicit compose backend starts the required services, then each optional one
    alone: one whose image is not built and one that exits at start are removed and
    unavailable, their dependant is never started, and their tests skip with the reason."""
    compose = yaml.safe_load(yaml.safe_dump(COMPOSE))
    web = compose["services"]["web"]
    compose["services"]["unbuilt"] = {
        **web,
        "image": "local-ai-suite-never-built:none",
        "ports": ["127.0.0.1:${UNBUILT_PORT:-18002}:8000"],
    }
    compose["services"]["dying"] = {
        **web,
        "environment": {"DIE_AT_START": "1"},
        "ports": ["127.0.0.1:${DYING_PORT:-18003}:8000"],
    }
    compose["services"]["after-dying"] = {
        **web,
        "ports": ["127.0.0.1:${AFTER_DYING_PORT:-18004}:8000"],
    }
    project.makefile(".yml", compose=yaml.safe_dump(compose))
    ready = "    ready: {http: /health, timeout: 60}\n"
    project.makefile(
        ".yaml",
        stack=(
            "name: demo\ncompose_files: [compose.yml]\nservices:\n"
            f"  web:\n    compose_service: web\n{ready}"
            f"  unbuilt:\n    compose_service: unbuilt\n    optional: true\n{ready}"
            f"  dying:\n    compose_service: dying\n    optional: true\n{ready}"
            "  after-dying:\n    compose_service: after-dying\n    optional: true\n"
            f"    depends_on: [dying]\n{ready}"
        ),
    )
    project.makepyfile("""
        import httpx
        def test_web(stack):
            assert httpx.get(stack.url("web") + "/ok").status_code == 200
            assert set(stack.unavailable) == {"unbuilt", "dying", "after-dying"}
        def test_unbuilt(stack):
            stack.url("unbuilt")
        def test_dying(stack):
            stack.url("dying")
        def test_after_dying(stack):
            stack.url("after-dying")
        """)
    result = project.runpytest_subprocess("-p", "no:randomly", "-rs")
    result.assert_outcomes(passed=1, skipped=3)
    # The run's closing lines: each with the last word of its reason.
    result.stdout.fnmatch_lines(
        [
            "stack: optional service 'unbuilt' was unavailable*No such image*never-built*",
            "stack: optional service 'dying' was unavailable*fatal: cannot open the frobnicator",
            "stack: optional service 'after-dying' was unavailable*frobnicator",
        ]
    )
    result.stdout.fnmatch_lines(["*'dying' is unavailable*", "*exit code 7*"])
    assert demo_containers(project) == []


@needs_compose
def test_kill_9_of_pytest_leaves_no_container(project: pytest.Pytester) -> None:
    marker = project.path / "stack-is-up"
    project.makepyfile(f"""
        import pathlib, time
        def test_hang(stack):
            pathlib.Path({str(marker)!r}).write_text(stack.url("web"))
            time.sleep(600)
        """)
    output = project.path / "inner-pytest.log"

    def inner_output() -> str:
        return output.read_text(errors="replace")[-4000:]

    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"],
            cwd=project.path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert (
                process.poll() is None
            ), f"pytest ended before the stack was up; its output:\n{inner_output()}"
            assert (
                time.monotonic() < deadline
            ), f"the stack did not come up; pytest's output:\n{inner_output()}"
            time.sleep(0.2)
        assert demo_containers(project)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        wait_until_no_containers(project)  # the reaper took the project down
        # The containers are gone before `docker compose down` returns (it removes the
        # network next), and only then does the reaper delete the record: wait for it.
        state_dir = Path(project.path / ".state")
        wait_until(lambda: not list(state_dir.glob("*.json")), timeout=60)
        assert list(state_dir.glob("*.json")) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_compose_without_docker_is_skipped_with_the_reason(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "no-docker-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    project.makepyfile("def test_x(stack):\n    pass\n")
    result = project.runpytest_subprocess("-p", "no:randomly", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["*stack backend 'compose' unavailable: the docker CLI is not installed*"]
    )


def test_a_project_docker_did_not_remove_stays_recorded_for_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed start whose `docker compose down` fails too must not forget the project.

    No docker CLI stands for any Docker failure: `up` and `down` both fail. The record
    stays, marked as a leftover, so that the reaper (when this run ends) and the next
    run's sweep retry the removal.
    """
    empty = tmp_path / "no-docker-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    (tmp_path / "compose.yml").write_text(yaml.safe_dump(COMPOSE))
    (tmp_path / "stack.yaml").write_text(
        "name: demo\ncompose_files: [compose.yml]\nservices:\n"
        "  web:\n    compose_service: web\n    ready: {http: /health, timeout: 5}\n"
    )
    manager = StackManager(
        load_stack(tmp_path / "stack.yaml"),
        state_dir=tmp_path / ".state",
        owner=current_process_identity(),
        keep=True,  # no reaper: it would outlive the test while the record stays
    )
    with pytest.raises(ServiceStartError, match="docker: command not found"):
        manager.acquire(backend="compose")
    state = StackState.load(manager.state_file)
    assert state is not None
    assert state.compose_leftover
    assert state.compose_project is not None
    assert state.compose_project.startswith("pytest-demo-")
