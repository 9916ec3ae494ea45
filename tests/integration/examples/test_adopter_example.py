"""examples/adopter, run as its authors would: a fresh venv, `pytest -n 2`, nothing left.

The project is copied out of the repository (so nothing of the checkout is importable)
into a folder other users can search: PostgreSQL runs as the `postgres` user when the
tests run as root, and pytest's own basetemp (/tmp/pytest-of-root) is private. The
plugins' wheel and the example (with its `test` extra) are installed together, pinned
to this environment's versions (tests/support/external_env.py).

Both backends run the same stack file: `local` (redis-server and PostgreSQL from
`make system-deps`) and `compose` (the images `docker/build-images.sh --adopter-example`
builds; skipped with the reason where no Docker engine answers or they are not built).
`make test-compose` runs the compose cases.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from ai_suite_pytest.stack import docker_cli

from tests.support.external_env import (
    REPO,
    ExternalEnv,
    install_with_pip,
    install_with_uv,
    write_constraints,
)
from tests.support.processes import assert_all_gone, wait_until

pytestmark = pytest.mark.timeout(600)

EXAMPLE = REPO / "examples" / "adopter"
RUNS = 3  # docs/testing/adopting.md records 10 in a row, run by hand
POSTGRES_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
HAVE_SERVERS = bool(shutil.which("redis-server") and shutil.which("redis-cli")) and any(
    (bin_dir / "initdb").exists() for bin_dir in POSTGRES_BINS
)
needs_servers = pytest.mark.skipif(
    not HAVE_SERVERS,
    reason="redis-server or PostgreSQL (initdb) missing: `make system-deps` installs them",
)
# The compose backend: the servers run in containers; the tests' clients run on the host.
IMAGES = [f"local-ai-suite-adopter-{target}:latest" for target in ("redis", "postgres", "app")]
CLIENTS = ("redis-cli", "psql", "pg_isready")


def _compose_unavailable() -> str | None:
    missing_clients = [client for client in CLIENTS if shutil.which(client) is None]
    if missing_clients:
        return f"{', '.join(missing_clients)} missing: `make system-deps` installs them"
    reason = docker_cli.unavailable_reason()
    if reason is None and (missing := docker_cli.missing_images(IMAGES)):
        reason = f"{', '.join(missing)} not built (docker/build-images.sh --adopter-example)"
    return reason


needs_compose = pytest.mark.skipif(
    (_reason := _compose_unavailable()) is not None, reason=f"compose backend: {_reason}"
)
# `auto` would pick compose wherever the images exist: each case names its backend.
BACKENDS = [
    pytest.param("local", marks=needs_servers, id="local"),
    pytest.param("compose", marks=needs_compose, id="compose"),
]
# Fewer runs on compose (CI time); the local runs already repeat the per-test resets.
RUNS_ON = {"local": RUNS, "compose": 2}


def searchable_tmpdir(prefix: str) -> Path:
    """A new folder outside pytest's private basetemp that other users can traverse."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)  # search only: the postgres user reaches its data dir below it
    return path


@pytest.fixture(scope="module")
def adopter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ExternalEnv, Path]]:
    """(venv with the plugins' wheel and the example installed, a copy of the example)."""
    workdir = tmp_path_factory.mktemp("adopter-env")
    (workdir / "tmp").mkdir()
    constraints = write_constraints(workdir / "constraints.txt")
    also = [f"{EXAMPLE}[test]"]
    uv = shutil.which("uv")
    if uv is not None:
        venv = install_with_uv(uv, workdir, constraints, also)
    elif importlib.util.find_spec("ensurepip") is not None:
        venv = install_with_pip(workdir, constraints, also)
    else:
        pytest.skip("neither uv nor venv with pip (ensurepip) is available to make a fresh venv")
    root = searchable_tmpdir("adopter-")
    project = root / "adopter"
    shutil.copytree(
        EXAMPLE, project, ignore=shutil.ignore_patterns(".pytest_stack", "artifacts", ".venv")
    )
    try:
        yield ExternalEnv(venv=venv, workdir=workdir), project
    finally:
        shutil.rmtree(root, ignore_errors=True)


def outcomes(report: Path) -> dict[str, str]:
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        results[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    return results


def containers_of(project: Path) -> list[str]:
    """Containers, in any state, that Compose made from ``project``'s compose.yml."""
    label = f"com.docker.compose.project.working_dir={project.resolve()}"
    result = docker_cli.run_docker(
        ["ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}} ({{.Status}})"],
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_example_passes_under_xdist_run_after_run(
    adopter: tuple[ExternalEnv, Path], backend: str
) -> None:
    env, project = adopter
    runs = RUNS_ON[backend]
    for run in range(runs):
        report = project / f"report-{backend}-{run}.xml"
        result = env.pytest(
            project,
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
            f"--stack-backend={backend}",
            f"--junitxml={report}",
        )  # .pytest() also checks that nothing is left running
        output = f"{backend} run {run + 1}/{runs}\n{result.stdout}\n{result.stderr}"
        assert result.returncode == 0, output
        results = outcomes(report)
        assert len(results) >= 7, output  # 5 on the notes service, Redis, PostgreSQL
        assert set(results.values()) == {"passed"}, output
        if backend == "compose":  # a local run has no engine to ask (none may be running)
            assert containers_of(project) == [], output


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_of_the_run_leaves_nothing_behind(
    adopter: tuple[ExternalEnv, Path], backend: str
) -> None:
    env, project = adopter
    hold = project / "tests" / "test_zz_hold.py"
    flag = project / "holding.flag"
    # Needs every service of the stack, so the kill comes with all of them running.
    hold.write_text(
        "import time\n\n"
        "def test_hold(stack, notes_url):\n"
        f"    open({str(flag)!r}, 'w').close()\n"
        "    time.sleep(300)\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [
            str(env.bin_dir / "pytest"),
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
            f"--stack-backend={backend}",
        ],
        cwd=project,
        env=env.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the whole run is one process group, as in a terminal
    )
    try:
        assert wait_until(flag.exists, timeout=120), "the holding test never started"
        if backend == "local":
            running = env.left_running(project)
            assert any("adopter_app" in line for line in running), running
        else:
            running = containers_of(project)
            assert len(running) == 3, running
            assert all("(Up " in line for line in running), running
        # The terminal's kill: the controller and its xdist workers, all at once.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        env.assert_nothing_left_running(project)  # the reaper took the services down
        if backend == "compose":
            # The reaper's `docker compose down` removes the containers too.
            assert wait_until(lambda: not containers_of(project), timeout=120), containers_of(
                project
            )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        hold.unlink()
        flag.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_command(service: str, **values: str) -> list[str]:
    """The service's command from examples/adopter/stack.yaml, placeholders filled."""
    spec = yaml.safe_load((EXAMPLE / "stack.yaml").read_text(encoding="utf-8"))
    return [str(arg).format(**values) for arg in spec["services"][service]["command"]]


def poll(argv: list[str], timeout: float) -> bool:
    def ok() -> bool:
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0

    return wait_until(ok, timeout=timeout)


def group_of(process: subprocess.Popen[bytes]) -> list[int]:
    """Every process of ``process``'s group: postgres's children make their own groups,
    so this lists its descendants."""
    root = psutil.Process(process.pid)
    return [process.pid, *(child.pid for child in root.children(recursive=True))]


@needs_servers
def test_start_postgres_script_creates_a_cluster_and_serves(tmp_path: Path) -> None:
    """start-postgres.sh as the stack file runs it: initdb, then postgres in the foreground;
    a second start reuses the cluster; a SIGKILL of the script's pid takes all down."""
    root = searchable_tmpdir("adopter-pg-")
    try:
        port = free_port()
        argv = stack_command("postgres", root=str(EXAMPLE), data_dir=str(root), port=str(port))
        log = tmp_path / "postgres.log"
        pg_isready = ["pg_isready", "-h", "127.0.0.1", "-p", str(port)]
        for start in ("initdb", "existing cluster"):
            with log.open("ab") as out:
                process = subprocess.Popen(
                    argv, cwd=EXAMPLE, stdout=out, stderr=out, start_new_session=True
                )
            try:
                assert poll(pg_isready, timeout=60), f"{start}: {log.read_text()}"
                # exec: the script's pid is now the postmaster itself, running as postgres.
                postmaster = psutil.Process(process.pid)
                assert Path(postmaster.exe()).name == "postgres", postmaster.cmdline()
                if os.geteuid() == 0:
                    assert postmaster.username() == "postgres"
                psql = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-tAc"]
                out = subprocess.run(
                    [*psql, "SELECT current_setting('fsync'), 6 * 7"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                ).stdout
                assert out.strip() == "off|42"
                members = group_of(process)
            finally:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # The postmaster's children notice its death and exit by themselves.
            assert_all_gone(members, timeout=30)
        assert (root / "pg" / "PG_VERSION").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@needs_servers
def test_redis_command_of_the_stack_file_serves(tmp_path: Path) -> None:
    port = free_port()
    argv = stack_command("redis", port=str(port))
    with (tmp_path / "redis.log").open("wb") as out:
        process = subprocess.Popen(argv, cwd=tmp_path, stdout=out, stderr=out)
    try:
        cli = ["redis-cli", "-p", str(port)]
        assert poll([*cli, "PING"], timeout=20), (tmp_path / "redis.log").read_text()
        subprocess.run([*cli, "SET", "k", "v"], capture_output=True, timeout=10, check=True)
        got = subprocess.run(
            [*cli, "GET", "k"], capture_output=True, text=True, timeout=10, check=True
        )
        assert got.stdout.strip() == "v"
        # --save "" and --appendonly no reached the server: it never writes to disk.
        config = subprocess.run(
            [*cli, "CONFIG", "GET", "*"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.splitlines()
        settings = dict(zip(config[::2], config[1::2], strict=True))
        assert (settings["save"], settings["appendonly"]) == ("", "no")
    finally:
        process.kill()
        process.wait(timeout=10)
