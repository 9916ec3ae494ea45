"""A fresh virtual environment outside the repository with the plugins' distribution.

Shared by the tests that use the plugins as an outside project would: the packaging
test (each doc's five-line example) and the adopter example (examples/adopter).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path

import psutil
import pytest

from tests.support.processes import wait_until

REPO = Path(__file__).resolve().parents[2]
# The plugins' own distribution (a uv workspace member): nothing of the platform.
PROJECT = REPO / "pytest_plugins"
DISTRIBUTION = "ai-suite-pytest"
# Its process core (groups, probes, stop), a distribution the platform shares: installed
# from this checkout too, as PyPI would serve both.
PROCS_PROJECT = REPO / "procs"
PROCS_DISTRIBUTION = "ai-suite-procs"
INSTALL_TIMEOUT_S = 480
RUN_TIMEOUT_S = 120
# The only variables a user's shell would plausibly pass on; everything else (PYTHONPATH,
# VIRTUAL_ENV, PYTEST_*, coverage's subprocess hooks) belongs to this run and must not leak.
PASSED_ENV = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER")


def check(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> None:
    """Run an install step; fail with its output, since that output is the whole diagnosis."""
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited with {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )


def write_constraints(path: Path) -> Path:
    """Pin the dependencies to the versions this checkout is tested with (its uv.lock).

    Resolving to whatever PyPI has today would make this test about other people's
    releases, and download what the uv cache already holds.
    """
    pins = sorted(
        {
            f"{dist.metadata['Name']}=={dist.version}"
            for dist in distributions()
            if dist.metadata["Name"]
            and dist.metadata["Name"].lower().replace("_", "-")
            not in (DISTRIBUTION, PROCS_DISTRIBUTION, "local-ai-suite")
        }
    )
    path.write_text("\n".join(pins) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class ExternalEnv:
    venv: Path
    workdir: Path

    @property
    def bin_dir(self) -> Path:
        return self.venv / "bin"

    def env(self) -> dict[str, str]:
        """What a user's shell with only this venv on PATH would pass to pytest."""
        env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
        outside_repo = [
            entry
            for entry in os.environ.get("PATH", "").split(os.pathsep)
            if entry and not Path(entry).resolve().is_relative_to(REPO)
        ]
        env["PATH"] = os.pathsep.join([str(self.bin_dir), *outside_repo])
        # Inner runs make their own basetemp here, never next to this run's.
        env["TMPDIR"] = str(self.workdir / "tmp")
        return env

    def pytest(
        self, project: Path, *args: str, timeout: float = RUN_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin_dir / "pytest"), *args],
            cwd=project,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.assert_nothing_left_running(project)
        return result

    def left_running(self, project: Path | None = None) -> list[str]:
        """Processes started from this venv, or (services such as redis-server and
        postgres, which are not Python) running in a folder of ``project``."""
        found = []
        for proc in psutil.process_iter(["cmdline", "status", "cwd"]):
            cmdline = proc.info["cmdline"] or []
            if proc.info["status"] == psutil.STATUS_ZOMBIE or not cmdline:
                continue
            cwd = proc.info["cwd"]
            inside = project is not None and cwd is not None and Path(cwd).is_relative_to(project)
            if cmdline[0].startswith(str(self.venv)) or inside:
                found.append(f"pid {proc.pid}: {' '.join(cmdline)}")
        return found

    def assert_nothing_left_running(self, project: Path | None = None) -> None:
        """Services and reapers started from this venv must all be gone after a run."""
        # A kill is asynchronous: wait well beyond a healthy teardown before calling it a leak.
        assert wait_until(
            lambda: not self.left_running(project), timeout=15
        ), f"still running: {self.left_running(project)}"


def install_env() -> dict[str, str]:
    """This run's environment for the installers, minus what points them at our venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_PYTHON_DOWNLOADS"] = "never"  # the system Python, as `make install` uses
    return env


def install_with_uv(uv: str, workdir: Path, constraints: Path, also: Sequence[str] = ()) -> Path:
    """The plugins' wheel and their process core's (each built from its sdist), plus
    ``also`` (e.g. a project's path)."""
    env = install_env()
    dist, venv = workdir / "dist", workdir / "venv"
    # `uv build` makes the sdist, then the wheel from that sdist: both must be complete.
    for project in (PROCS_PROJECT, PROJECT):
        check(
            [uv, "build", "--python", sys.executable, "--out-dir", str(dist), str(project)],
            cwd=workdir,
            env=env,
            timeout=INSTALL_TIMEOUT_S,
        )
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == 2, f"expected two wheels in {dist}, found {wheels}"
    check(
        [uv, "venv", "--python", sys.executable, str(venv)],
        cwd=workdir,
        env=env,
        timeout=INSTALL_TIMEOUT_S,
    )
    install = [uv, "pip", "install", "--python", str(venv / "bin" / "python")]
    check(
        [*install, "-c", str(constraints), *map(str, wheels), *also],
        cwd=workdir,
        env=env,
        timeout=INSTALL_TIMEOUT_S,
    )
    return venv


def install_with_pip(workdir: Path, constraints: Path, also: Sequence[str] = ()) -> Path:
    env = install_env()
    venv = workdir / "venv"
    check(
        [sys.executable, "-m", "venv", str(venv)],
        cwd=workdir,
        env=env,
        timeout=INSTALL_TIMEOUT_S,
    )
    # pip builds the wheel straight from the checkout (no sdist step without `build`).
    python = str(venv / "bin" / "python")
    check(
        [
            *(python, "-m", "pip", "install", "--quiet", "-c", str(constraints)),
            *(str(PROCS_PROJECT), str(PROJECT), *also),
        ],
        cwd=workdir,
        env=env,
        timeout=INSTALL_TIMEOUT_S,
    )
    return venv
