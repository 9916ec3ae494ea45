"""Claims of docs/testing/adopting.md's comparison table about other tools, where the
tool runs here: pytest-xprocess (pytest-docker and testcontainers need a Docker engine).

pytest-xprocess is not a dependency of this repository: it is installed into a fresh
venv from the uv cache or PyPI; where that fails, the test skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.support.external_env import install_env, write_constraints
from tests.support.processes import assert_all_gone, wait_until

pytestmark = pytest.mark.timeout(600)

CONFTEST = """
import sys

import pytest
from xprocess import ProcessStarter


@pytest.fixture(scope="session")
def server(xprocess):
    class Starter(ProcessStarter):
        pattern = "Serving HTTP"
        args = [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"]

    pid, _log = xprocess.ensure("server", Starter)
    yield pid
    # pytest-xprocess's documented teardown: it never runs after a kill -9.
    xprocess.getinfo("server").terminate()
"""

HOLD = """
import time

def test_hold(server):
    with open("server.pid", "w") as f:
        f.write(str(server))
    time.sleep(300)
"""


@pytest.fixture(scope="module")
def xprocess_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is needed to make a venv with pytest-xprocess")
    workdir = tmp_path_factory.mktemp("xprocess-env")
    constraints = write_constraints(workdir / "constraints.txt")
    venv = workdir / "venv"
    env = install_env()
    made = subprocess.run(
        [uv, "venv", "--python", sys.executable, str(venv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    install = [uv, "pip", "install", "--python", python, "-c", str(constraints)]
    installed = subprocess.run(
        [*install, "pytest", "pytest-xprocess==1.0.2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0:
        pytest.skip(
            f"pytest-xprocess could not be installed (no cache, no PyPI?): {installed.stderr}"
        )
    return venv


def test_pytest_xprocess_leaves_its_server_running_after_kill_9(
    xprocess_venv: Path, tmp_path: Path
) -> None:
    """pytest-xprocess starts each process in its own process group and stops it only in
    the fixture's teardown: a kill -9 of the pytest run (its whole group) orphans it."""
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (tmp_path / "test_hold.py").write_text(HOLD, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    pid_file = tmp_path / "server.pid"
    env = {k: v for k, v in install_env().items() if not k.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only xprocess (and the cache it needs)
    process = subprocess.Popen(
        [str(xprocess_venv / "bin" / "pytest"), "-p", "xprocess", "-q"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = None
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text(), timeout=120)
        server = psutil.Process(int(pid_file.read_text()))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        # Well past the time the stack plugin's reaper takes to stop its services.
        assert not wait_until(lambda: not server.is_running(), timeout=5)
        assert "http.server" in " ".join(server.cmdline())
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if server is not None and server.is_running():
            server.kill()
            assert_all_gone([server.pid])
