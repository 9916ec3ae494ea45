"""The child-process supervisor behind ``ai-suite up``, with real child processes.

Children are small ``python -c`` scripts; every test polls for the state it
expects (no fixed sleeps) and the fixture kills whatever is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from ai_suite_procs.groups import _LIBC, _prepare_child

from services.core.supervisor import (
    NEVER_RESTART,
    RestartPolicy,
    RestartReason,
    ServiceFailed,
    ServiceSpec,
    State,
    Supervisor,
    port_in_use,
)
from tests.support.live import free_port
from tests.support.processes import gone, wait_until

ROOT = Path(__file__).resolve().parents[3]

# Answers 200 to every GET, after starting a grandchild in its process group.
HTTP_CHILD = textwrap.dedent("""
    import http.server, subprocess, sys
    grandchild = subprocess.Popen(["sleep", "60"])
    print("grandchild", grandchild.pid, flush=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """)

CRASHING_CHILD = textwrap.dedent("""
    import sys
    print("loading configuration")
    print("error: GATEWAY_UPSTREAMS is not valid JSON")
    sys.exit(3)
    """)

SLEEPING_CHILD = "import time; time.sleep(60)"

STUBBORN_CHILD = textwrap.dedent("""
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ignoring SIGTERM", flush=True)
    time.sleep(60)
    """)


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def echoed() -> list[str]:
    """What the supervisor told the user."""
    return []


@pytest.fixture
def supervisor(tmp_path: Path, echoed: list[str]) -> Iterator[Supervisor]:
    sup = Supervisor(tmp_path / "logs", echo=echoed.append)
    yield sup
    sup.stop_all(grace=0.5)


def spec(name: str, script: str, *, port: int | None = None, **kwargs: object) -> ServiceSpec:
    port = port or free_port()
    return ServiceSpec(
        name=name, argv=[sys.executable, "-c", script, str(port)], port=port, **kwargs
    )


@pytest.mark.usefixtures("dead_proxy")
def test_ready_child_and_its_grandchild_are_stopped(
    supervisor: Supervisor, echoed: list[str]
) -> None:
    running = supervisor.start(spec("web", HTTP_CHILD, start_timeout=10))

    seconds = supervisor.wait_ready(running)

    assert 0 < seconds < 10
    assert running.log_path == supervisor.log_dir / "web.log"
    child = psutil.Process(running.process.pid)
    (grandchild,) = child.children()
    assert grandchild.name() == "sleep"
    assert os.getpgid(grandchild.pid) == running.process.pid  # same process group
    assert os.getsid(running.process.pid) == running.process.pid  # own session
    assert supervisor.exited() == []

    supervisor.stop_all(grace=5)

    assert running.process.returncode == -signal.SIGTERM
    assert wait_until(lambda: gone(grandchild.pid))
    assert supervisor.running == []
    assert echoed == []


def test_child_that_exits_during_start_up_fails_at_once(supervisor: Supervisor) -> None:
    running = supervisor.start(spec("gateway", CRASHING_CHILD, start_timeout=30))
    started = time.monotonic()

    with pytest.raises(ServiceFailed) as caught:
        supervisor.wait_ready(running)

    assert time.monotonic() - started < 5
    failure = caught.value
    assert failure.name == "gateway"
    assert "exited during start-up with code 3" in str(failure)
    assert failure.log_tail == [
        "loading configuration",
        "error: GATEWAY_UPSTREAMS is not valid JSON",
    ]
    assert "    error: GATEWAY_UPSTREAMS is not valid JSON" in str(failure)
    assert supervisor.exited() == [running]


def test_child_that_never_becomes_ready_times_out(supervisor: Supervisor) -> None:
    running = supervisor.start(spec("slow", SLEEPING_CHILD, start_timeout=0.5))

    with pytest.raises(ServiceFailed) as caught:
        supervisor.wait_ready(running, poll=0.05)

    message = str(caught.value)
    # The last probe is ConnectError, or "no answer yet" when a loaded machine
    # did not get to probe at all within 0.5 s.
    assert "slow: not ready after 0.5s (last probe: " in message
    assert "(no output)" in message
    assert running.process.poll() is None  # still running: stop_all's job


def test_child_that_ignores_sigterm_is_killed_after_the_grace_period(
    supervisor: Supervisor, echoed: list[str]
) -> None:
    running = supervisor.start(spec("stubborn", STUBBORN_CHILD))
    assert wait_until(lambda: running.log_tail() == ["ignoring SIGTERM"])
    started = time.monotonic()

    supervisor.stop_all(grace=0.5)

    assert 0.5 <= time.monotonic() - started < 5
    assert running.process.returncode == -signal.SIGKILL
    assert echoed == ["stubborn did not stop in 0.5s; killing it"]


def test_log_is_appended_and_env_is_passed(supervisor: Supervisor) -> None:
    script = "import os; print(os.environ['GREETING'])"
    for _ in range(2):
        running = supervisor.start(spec("env", script, env={"GREETING": "hello"}))
        running.process.wait(timeout=10)

    assert running.log_tail() == ["hello", "hello"]
    assert running.log_tail(lines=1) == ["hello"]


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_in_use_on_a_free_port() -> None:
    assert port_in_use("127.0.0.1", free_port()) is None


def test_port_in_use_names_the_listener(listening: int) -> None:
    description = port_in_use("127.0.0.1", listening)

    assert description is not None
    assert description.startswith(f"pid {os.getpid()} (")


def test_start_refuses_a_busy_port(supervisor: Supervisor, listening: int) -> None:
    with pytest.raises(ServiceFailed) as caught:
        supervisor.start(spec("gateway", SLEEPING_CHILD, port=listening))

    message = str(caught.value)
    assert f"port {listening} on 127.0.0.1 is already in use by pid {os.getpid()}" in message
    assert "GATEWAY_PORT" in message
    assert supervisor.running == []
    assert not (supervisor.log_dir / "gateway.log").exists()


SUPERVISOR_PROCESS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from services.core.supervisor import ServiceSpec, Supervisor

    supervisor = Supervisor(Path(sys.argv[1]))
    running = supervisor.start(ServiceSpec(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], port=int(sys.argv[2])
    ))
    print(running.process.pid, flush=True)
    time.sleep(60)
    """)


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output within {timeout}s"
    return process.stdout.readline()


def test_children_die_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR_PROCESS, str(tmp_path / "logs"), str(free_port())],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    child_pid = 0
    try:
        child_pid = int(read_line(parent, timeout=10))
        child = psutil.Process(child_pid)
        assert child.ppid() == parent.pid
        assert not gone(child_pid)

        parent.kill()  # SIGKILL: the supervisor gets no chance to clean up
        parent.wait(timeout=5)

        assert wait_until(lambda: gone(child_pid)), "child outlived its supervisor"
    finally:
        parent.kill()
        parent.wait(timeout=5)
        if parent.stdout:
            parent.stdout.close()
        if child_pid:
            kill_quietly(child_pid)


def _forked_exit_code(expected_parent: int) -> int:
    """Run ``_prepare_child`` in a fork of this process; exit with the armed signal."""
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() with threads; the child only calls prctl.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 100
        try:
            _prepare_child(expected_parent, die_with_parent=True, umask=None)
            armed = ctypes.c_int()
            _LIBC.prctl(2, ctypes.byref(armed))  # PR_GET_PDEATHSIG
            code = armed.value
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(_LIBC is None, reason="PR_SET_PDEATHSIG is Linux-only")
def test_die_with_parent_arms_pdeathsig() -> None:
    assert _forked_exit_code(expected_parent=os.getpid()) == signal.SIGKILL


@pytest.mark.skipif(_LIBC is None, reason="PR_SET_PDEATHSIG is Linux-only")
def test_die_with_parent_exits_if_the_supervisor_is_already_gone() -> None:
    # As when the supervisor dies between fork() and prctl(): the child's parent
    # is no longer the supervisor, no signal will ever come, so it must not run.
    assert _forked_exit_code(expected_parent=os.getppid()) == 1


@pytest.mark.usefixtures("dead_proxy")
def test_logs_are_0600_and_children_create_private_files(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    old = os.umask(0o022)  # the usual desktop umask
    try:
        (tmp_path / "logs").mkdir(mode=0o755)
        (tmp_path / "logs" / "old.log").write_text("from an older version\n")
        (tmp_path / "logs" / "old.log").chmod(0o644)
        script = (
            "import os, sys; open(sys.argv[2], 'w').close(); os.mkdir(sys.argv[3]); print('done')"
        )
        made, made_dir = tmp_path / "made-by-child", tmp_path / "dir-by-child"
        for name in ("fresh", "old"):
            running = supervisor.start(
                ServiceSpec(
                    name=name,
                    argv=[sys.executable, "-c", script, "0", str(made), str(made_dir)],
                    port=free_port(),
                )
            )
            running.process.wait(timeout=10)
            if name == "fresh":
                assert running.log_tail() == ["done"]
                made.unlink()
                made_dir.rmdir()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700
    for name in ("fresh.log", "old.log"):
        assert stat.S_IMODE((tmp_path / "logs" / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert stat.S_IMODE(made_dir.stat().st_mode) == 0o700


# --- restarts (launch + tick) ---------------------------------------------------------

QUICK = RestartPolicy(max_restarts=2, window=60.0, backoff_initial=0.01, backoff_max=0.05)


def tick_until(supervisor: Supervisor, condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        supervisor.tick()
        time.sleep(0.02)
    return True


@pytest.mark.usefixtures("dead_proxy")
def test_crash_loop_gives_up_after_the_limit_and_keeps_the_others(
    supervisor: Supervisor, echoed: list[str]
) -> None:
    changes: list[str] = []
    supervisor.on_change = lambda sup: changes.extend(
        str(s.state) for s in sup.services.values() if s.spec.name == "gateway"
    )
    web = supervisor.launch(spec("web", HTTP_CHILD, start_timeout=10))
    crashing = supervisor.launch(spec("gateway", CRASHING_CHILD, restart=QUICK))

    assert tick_until(supervisor, supervisor.settled)

    assert crashing.state == State.FAILED
    assert crashing.restarts == {RestartReason.CRASH: 2, RestartReason.REQUESTED: 0}
    assert crashing.last_exit_code == 3
    assert crashing.reason == (
        "exited during start-up (code 3); gave up after 2 restarts within 60s (crash loop)"
    )
    assert crashing.pid is None
    assert crashing.log_tail[-1] == "error: GATEWAY_UPSTREAMS is not valid JSON"
    assert web.state == State.READY  # never touched
    assert web.restarts[RestartReason.CRASH] == 0
    assert "failed" in changes
    restarting = [line for line in echoed if "restarting in" in line]
    assert [line.split("\n")[0] for line in restarting] == [
        "gateway: exited during start-up (code 3); restarting in 0.01s"
        " (restart 1 of at most 2 within 60s)",
        "gateway: exited during start-up (code 3); restarting in 0.02s"
        " (restart 2 of at most 2 within 60s)",
    ]
    assert echoed[-1].startswith(
        "error: gateway: exited during start-up (code 3); gave up after 2 restarts"
    )
    assert supervisor.snapshot()["gateway"]["state"] == "failed"


def test_restarts_older_than_the_window_do_not_count(supervisor: Supervisor) -> None:
    # Each run lasts 0.2 s, longer than the 0.05 s window: no restart is ever "recent",
    # so the limit of 1 is never reached (the other side of the crash-loop test).
    policy = RestartPolicy(max_restarts=1, window=0.05, backoff_initial=0.01)
    script = "import sys, time; time.sleep(0.2); sys.exit(4)"
    service = supervisor.launch(spec("flaky", script, restart=policy))

    assert tick_until(supervisor, lambda: service.restarts[RestartReason.CRASH] >= 3)

    assert service.state != State.FAILED


def test_no_restart_policy_leaves_it_down(supervisor: Supervisor) -> None:
    service = supervisor.launch(spec("once", CRASHING_CHILD, restart=NEVER_RESTART))

    assert tick_until(supervisor, supervisor.settled)

    assert service.state == State.FAILED
    assert service.reason == "exited during start-up (code 3); its restart policy is never"
    assert service.restarts[RestartReason.CRASH] == 0


@pytest.mark.usefixtures("dead_proxy")
def test_killed_service_is_restarted_and_awaited_ready(
    supervisor: Supervisor, echoed: list[str]
) -> None:
    service = supervisor.launch(spec("web", HTTP_CHILD, start_timeout=10, restart=QUICK))
    assert tick_until(supervisor, lambda: service.state == State.READY)
    first = service.pid
    assert first is not None
    (grandchild,) = psutil.Process(first).children()

    os.kill(first, signal.SIGKILL)
    assert tick_until(supervisor, lambda: service.state != State.READY)
    assert tick_until(supervisor, lambda: service.state == State.READY)

    assert service.pid not in (None, first)
    assert service.restarts[RestartReason.CRASH] == 1
    assert service.reason == "exited unexpectedly (killed by SIGKILL)"
    assert wait_until(lambda: gone(grandchild.pid))  # the old group went with it
    assert any(line.startswith(f"web is ready again (pid {service.pid}") for line in echoed)
    assert [r.process.pid for r in supervisor.running] == [service.pid]


@pytest.mark.usefixtures("dead_proxy")
def test_requested_restart_stops_and_starts_one_service(supervisor: Supervisor) -> None:
    service = supervisor.launch(spec("web", HTTP_CHILD, start_timeout=10, restart=QUICK))
    other = supervisor.launch(spec("other", HTTP_CHILD, start_timeout=10, restart=QUICK))
    assert tick_until(supervisor, supervisor.settled)
    first, other_pid = service.pid, other.pid

    assert supervisor.request_restart("web") == "web: restarting (requested)"
    assert service.state == State.STOPPING
    assert tick_until(supervisor, lambda: service.state == State.READY)

    assert service.pid not in (None, first)
    assert service.restarts == {RestartReason.CRASH: 0, RestartReason.REQUESTED: 1}
    assert service.last_exit_code == -signal.SIGTERM
    assert other.pid == other_pid
    with pytest.raises(KeyError):
        supervisor.request_restart("nope")


def test_requested_restart_of_a_given_up_service_starts_it_with_a_fresh_budget(
    supervisor: Supervisor,
) -> None:
    service = supervisor.launch(spec("gateway", CRASHING_CHILD, restart=QUICK))
    assert tick_until(supervisor, supervisor.settled)
    assert service.state == State.FAILED

    assert supervisor.request_restart("gateway") == "gateway: starting again (requested)"

    assert service.state == State.STARTING
    assert tick_until(supervisor, lambda: service.state == State.FAILED)
    assert service.restarts == {RestartReason.CRASH: 4, RestartReason.REQUESTED: 1}


def test_never_ready_counts_as_a_crash(supervisor: Supervisor) -> None:
    policy = RestartPolicy(max_restarts=0)
    service = supervisor.launch(spec("slow", SLEEPING_CHILD, start_timeout=0.3, restart=policy))
    first = service.running.process if service.running else None

    assert tick_until(supervisor, supervisor.settled)

    assert service.state == State.FAILED
    assert service.reason.startswith("not ready after 0.3s (last probe: ")
    assert service.reason.endswith("; gave up after 0 restarts within 60s (crash loop)")
    assert first is not None
    assert first.returncode == -signal.SIGKILL


def test_backoff_doubles_up_to_its_maximum() -> None:
    policy = RestartPolicy(backoff_initial=0.5, backoff_max=30.0)
    assert [policy.delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
