"""The Compose phases on Docker itself: Compose accepts each phase, and `make up-p3` runs.

`docker compose config` validates every file list ``docker/phases.sh files`` gives (needs
only the Compose CLI). The last test runs ``make up-p3`` for real, against the engine
(``make docker-up``) with the project's images (``make docker-test-images``; the target
would build missing ones, but compiling llama.cpp takes minutes, so the test skips
instead), on free ports and in a project of its own, checks that every URL it prints
answers /ready, and removes the project with ``make down REMOVE_DATA=1``. Plain-YAML
checks of the same files: tests/unit/repo/test_compose_phases.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from ai_suite_pytest.stack import docker_cli

from tests.support.live import free_port

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "docker" / "phases.sh"
MODES = [
    {"INFERENCE_MODE": "llama-cpp", "QDRANT_MODE": "server"},
    {"INFERENCE_MODE": "tiny", "QDRANT_MODE": "embedded"},
]
IMAGES = ["local-ai-suite:latest", "local-ai-suite-llama:latest"]
URL_LINE = re.compile(r"^  (\w+) +(http://127\.0\.0\.1:(\d+))  ", re.MULTILINE)
# What a user's shell passes on; the rest (the caller's ports, AI_SUITE_*, COMPOSE_FILE,
# coverage hooks) must not reach the phases.
PASSED_ENV = ("PATH", "HOME", "LANG", "USER", "DOCKER_HOST", "DOCKER_CONFIG", "UV_CACHE_DIR")


def base_env(**extra: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update(extra)
    return env


def compose_cli() -> str:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed: cannot validate with Compose itself")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if version.returncode != 0:
        pytest.skip("`docker compose` (v2) is not installed: cannot validate with Compose itself")
    return docker


def phase_files(phase: str, modes: dict[str, str]) -> list[str]:
    result = subprocess.run(
        ["bash", str(SCRIPT), "files", phase],
        env=base_env(**modes),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("modes", MODES, ids=lambda m: "-".join(m.values()))
@pytest.mark.parametrize("phase", ["p1", "p2", "p3"])
def test_compose_accepts_every_phase(phase: str, modes: dict[str, str]) -> None:
    docker = compose_cli()
    files = phase_files(phase, modes)
    result = subprocess.run(
        [docker, "compose", "-p", "phases-config", *files, "config", "--quiet"],
        env=base_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_accepts_the_monitoring_stack() -> None:
    docker = compose_cli()
    monitoring = ROOT / "docker" / "compose.monitoring.yml"
    result = subprocess.run(
        [docker, "compose", "-f", str(monitoring), "config", "--quiet"],
        env=base_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _engine_unavailable() -> str | None:
    if shutil.which("make") is None:
        return "make is not installed"
    reason = docker_cli.unavailable_reason()
    if reason is None and (missing := docker_cli.missing_images(IMAGES)):
        reason = f"images {', '.join(missing)} are not built (make docker-test-images)"
    return reason


def test_a_phase_without_an_engine_says_how_to_start_one(tmp_path: Path) -> None:
    # A docker that finds no engine, first on PATH, as on a machine where none runs.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n"
    )
    (fake / "docker").chmod(0o755)
    env = base_env()
    env["PATH"] = f"{fake}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", str(SCRIPT), "up", "p1"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "no Docker engine answers" in result.stderr
    assert "make docker-up" in result.stderr


@pytest.mark.skipif(
    (_no_engine := docker_cli.unavailable_reason()) is not None,
    reason=f"make up-monitoring: {_no_engine}",
)
def test_up_monitoring_with_an_image_it_cannot_get_starts_nothing_and_names_it() -> None:
    # An image no registry has: pulling fails here (no registry) and on a runner alike.
    missing = f"local-ai-suite-missing/prometheus:v0-{uuid.uuid4().hex[:8]}"
    project = f"phases-test-{uuid.uuid4().hex[:8]}"
    env = base_env(
        COMPOSE_PROJECT_NAME=project,
        MONITORING_PROJECT_NAME=f"{project}-monitoring",
        INFERENCE_MODE="tiny",
        QDRANT_MODE="embedded",
        PROMETHEUS_IMAGE=missing,
    )
    result = subprocess.run(
        ["make", "--no-print-directory", "up-monitoring"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert f"    {missing}\n" in result.stderr
    assert "docker load" in result.stderr
    assert "Nothing was started." in result.stderr
    assert docker_cli.project_containers(project) == []
    assert docker_cli.project_containers(f"{project}-monitoring") == []


@pytest.mark.timeout(900)
@pytest.mark.skipif((_reason := _engine_unavailable()) is not None, reason=f"make up-p3: {_reason}")
def test_make_up_p3_starts_healthy_containers_and_prints_their_urls() -> None:
    token = uuid.uuid4().hex[:8]
    ports = {f"{name}_PORT": str(free_port()) for name in ("GATEWAY", "RAG", "MCP", "INFERENCE")}
    ports["QDRANT_PORT"] = str(free_port())
    env = base_env(
        COMPOSE_PROJECT_NAME=f"phases-test-{token}",
        MONITORING_PROJECT_NAME=f"phases-test-monitoring-{token}",
        INFERENCE_MODE="tiny",
        PHASE_WAIT_TIMEOUT="600",
        **ports,
    )
    try:
        up = subprocess.run(
            ["make", "--no-print-directory", "up-p3"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=840,
            check=False,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        urls = {name: url for name, url, _port in URL_LINE.findall(up.stdout)}
        assert {"inference", "gateway", "rag", "mcp"} <= set(urls), up.stdout
        for name in ("gateway", "rag", "mcp"):
            assert urls[name] == f"http://127.0.0.1:{ports[f'{name.upper()}_PORT']}"
            ready = httpx.get(f"{urls[name]}/ready", timeout=10, trust_env=False)
            # MCP is "degraded" (still 200) in a container: no bubblewrap (CLAUDE.md).
            assert ready.status_code == 200, f"{name}: {ready.text}"
            assert ready.json()["service"] == name
        models = httpx.get(f"{urls['inference']}/v1/models", timeout=10, trust_env=False)
        assert [m["id"] for m in models.json()["data"]] == ["tiny-llama:q8"]
        assert "TINY GENERATED model" in up.stdout
    finally:
        down = subprocess.run(
            ["make", "--no-print-directory", "down", "REMOVE_DATA=1"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert down.returncode == 0, down.stdout + down.stderr
    assert docker_cli.project_containers(env["COMPOSE_PROJECT_NAME"]) == []
    volumes = docker_cli.run_docker(
        [
            "volume",
            "ls",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}",
        ]
    )
    assert volumes.returncode == 0, volumes.stderr
    assert volumes.stdout.strip() == "", "make down REMOVE_DATA=1 left volumes behind"
