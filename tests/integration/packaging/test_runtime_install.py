"""`make up` on a fresh clone installs what the platform runs on, and no test or lint tool.

The clone is the repository's tracked files (as a fresh `git clone` of this working tree
would have them) in a temporary directory; uv's cache is the caller's, so the install
copies from a warm cache instead of downloading. The first test runs `make up` itself
until the platform is ready, then stops it; the second switches one .venv between the two
installs, as a developer does (`make install` for the tests, `make up` to run the
platform), and checks that neither undoes the other.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.live import free_port

REPO = Path(__file__).resolve().parents[3]
# The dev group's tools (pyproject.toml): none may reach a runtime install.
DEV_TOOLS = ("pytest", "ruff", "black", "bandit", "lint-imports", "schemathesis")
DEV_MODULES = ("pytest", "hypothesis", "ai_suite_pytest", "respx", "openai", "gguf")
# What a user's shell passes on (its network and index settings included): never this
# run's ports, AI_SUITE_*, VIRTUAL_ENV or coverage hooks.
PASSED_ENV = ("HOME", "LANG", "USER")
PASSED_PREFIXES = ("UV_", "PIP_", "SSL_CERT_")
PASSED_SUFFIXES = ("_CA_BUNDLE", "_PROXY", "_proxy")
# uv would put the environment elsewhere than the .venv the Makefile uses.
NOT_PASSED = ("UV_PROJECT_ENVIRONMENT",)

pytestmark = pytest.mark.timeout(600)


def user_env(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in NOT_PASSED
        and (
            name in PASSED_ENV or name.startswith(PASSED_PREFIXES) or name.endswith(PASSED_SUFFIXES)
        )
    }
    # PATH without this checkout's .venv: the clone must use its own.
    env["PATH"] = os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and not Path(entry).resolve().is_relative_to(REPO)
    )
    env.update(extra)
    return env


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: cannot tell which files a clone has")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    target = tmp_path / "clone"
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not cloned
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def make(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No bytecode compilation (a command-line variable overrides the Makefile's export):
    # what is checked here is which packages each install leaves, and compiling the dev
    # group's thousands of files would double the test's time.
    result = subprocess.run(
        ["make", "--no-print-directory", *args, "UV_COMPILE_BYTECODE=0"],
        cwd=clone,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert result.returncode == 0, f"make {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def wait_until_ready(process: subprocess.Popen[str], timeout: float) -> None:
    """Read stderr until `ai-suite up` says every service is ready; fail if make ends first."""
    assert process.stderr is not None
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in process.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "stop: Ctrl-C" in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not found.wait(0.5):
        if not reader.is_alive() or time.monotonic() > deadline:
            reader.join(5)
            pytest.fail(f"make up did not get ready (exit {process.poll()}):\n{''.join(lines)}")


IMPORT_EVERY_MODULE = """
import importlib, pkgutil, services
failed = []
for module in pkgutil.walk_packages(services.__path__, "services."):
    if ".dashgen" in module.name:
        continue
    try:
        importlib.import_module(module.name)
    except ImportError as exc:
        failed.append(f"{module.name} ({exc})")
print(" ".join(failed))
"""


def installed_dev_parts(venv: Path) -> list[str]:
    tools = [tool for tool in DEV_TOOLS if (venv / "bin" / tool).exists()]
    check = (
        "import importlib.util, sys; "
        "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))"
    )
    modules = subprocess.run(
        [str(venv / "bin" / "python"), "-c", check, *DEV_MODULES],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return tools + modules


def test_a_first_make_up_runs_the_platform_without_test_tools(clone: Path) -> None:
    ports = {name: free_port() for name in ("GATEWAY", "MCP", "RAG", "PROMETHEUS", "ALERTMANAGER")}
    env = user_env(
        AI_SUITE_DATA_DIR=str(clone / "data"),
        ALERTS_LISTEN_PORT=str(free_port()),
        # No inference server: the gateway is ready, its backend check "degraded".
        INFERENCE_URL=f"http://127.0.0.1:{free_port()}/v1",
        **{f"{name}_PORT": str(port) for name, port in ports.items()},
    )
    process = subprocess.Popen(
        ["make", "--no-print-directory", "up"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: make, ai-suite up and the services
    )
    try:
        wait_until_ready(process, timeout=420)
        for name in ("GATEWAY", "MCP", "RAG"):
            ready = httpx.get(f"http://127.0.0.1:{ports[name]}/ready", timeout=10)
            assert ready.status_code == 200, f"{name}: {ready.text}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=60)
    venv = clone / ".venv"
    assert installed_dev_parts(venv) == [], "make up installed development tools"
    # Every module of the platform imports with the runtime dependencies alone (a module
    # that only some command or route loads would not show above); dashgen is a build
    # tool whose SDK is a dev dependency by design.
    unimportable = subprocess.run(
        [str(venv / "bin" / "python"), "-c", IMPORT_EVERY_MODULE],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert unimportable == "", f"modules that need a dev dependency: {unimportable}"
    assert (venv / ".synced-runtime").exists()
    assert not (venv / ".synced-dev").exists()
    assert not (clone / ".hypothesis").exists(), "make up ran Hypothesis"


def test_switching_between_the_two_installs_keeps_the_test_tools(clone: Path) -> None:
    venv = clone / ".venv"
    make(clone, "install-runtime")
    assert installed_dev_parts(venv) == []
    make(clone, "install")
    assert installed_dev_parts(venv) == [*DEV_TOOLS, *DEV_MODULES]
    # The development install covers the runtime one: nothing to do.
    assert "sync" not in make(clone, "install-runtime").stdout
    # A changed lock makes the runtime install sync again: it must not strip the tools.
    (clone / "uv.lock").touch()
    assert "--inexact" in make(clone, "install-runtime").stdout
    assert installed_dev_parts(venv) == [*DEV_TOOLS, *DEV_MODULES]
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-c", "import services.gateway.app"], check=True)
