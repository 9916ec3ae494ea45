"""The few Docker facts the stack needs, from the ``docker`` CLI (pytest-free).

Kept apart from the compose backend so that the state file's sweep and the
reaper can remove a Compose project knowing only its name: ``docker compose -p
NAME down`` finds the project's containers, networks and volumes by label.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

# Variables that would make `docker compose` use other files, project or profiles
# than the ones the stack passes explicitly.
_COMPOSE_OVERRIDES = (
    "COMPOSE_FILE",
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_PROFILES",
    "COMPOSE_ENV_FILES",
)


def docker_binary() -> str | None:
    return shutil.which("docker")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _COMPOSE_OVERRIDES}
    env.update(extra or {})
    return env


def run_docker(
    args: list[str], *, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS``; never raises for a non-zero exit (callers decide)."""
    docker = docker_binary()
    if docker is None:
        return subprocess.CompletedProcess(args, 127, "", "docker: command not found")
    try:
        return subprocess.run(  # noqa: S603 - argv list, no shell
            [docker, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env if env is not None else clean_env(),
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"docker {args[0]} timed out")


def unavailable_reason() -> str | None:
    """Why the compose backend cannot run here, or None when it can."""
    if docker_binary() is None:
        return "the docker CLI is not installed"
    info = run_docker(["info", "--format", "{{.ServerVersion}}"], timeout=15)
    if info.returncode != 0:
        return "no Docker engine answers `docker info` (start one: docker/dockerd.sh start)"
    version = run_docker(["compose", "version", "--short"], timeout=15)
    if version.returncode != 0 or not version.stdout.strip().startswith("2"):
        return "Docker Compose v2 (`docker compose`) is not installed"
    return None


def missing_images(images: list[str]) -> list[str]:
    return [
        image for image in images if run_docker(["image", "inspect", image], timeout=30).returncode
    ]


def project_containers(project: str) -> list[dict[str, str]] | None:
    """``docker compose ps -a`` of a project as dicts; None if Docker did not answer."""
    result = run_docker(["compose", "-p", project, "ps", "-a", "--format", "json"], timeout=30)
    if result.returncode != 0:
        return None
    rows: list[dict[str, str]] = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line:
            continue
        data = json.loads(line)
        rows.extend(data if isinstance(data, list) else [data])
    return rows


def project_running(project: str, services: list[str]) -> bool:
    """True when every one of ``services`` (Compose names) has a running container."""
    rows = project_containers(project)
    if rows is None or not services:
        return False
    running = {row.get("Service") for row in rows if row.get("State") == "running"}
    return all(service in running for service in services)


def down_project(project: str, timeout: float = 120.0) -> bool:
    """Remove a project's containers, networks and volumes; True if Docker did it."""
    result = run_docker(
        ["compose", "-p", project, "down", "--volumes", "--remove-orphans", "--timeout", "5"],
        timeout=timeout,
    )
    return result.returncode == 0
