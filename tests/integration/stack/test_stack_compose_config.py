"""Docker Compose itself accepts the compose files, alone and in the combinations used."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[3] / "docker"
PHASES = ["compose.p1.yml", "compose.p2.yml", "compose.p3.yml"]
OVERRIDES = ["compose.test.yml", "compose.test.p2.yml"]


def _compose_cli() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    ok = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    return docker if ok.returncode == 0 else None


@pytest.mark.parametrize(
    "files",
    [
        ["compose.p1.yml"],
        ["compose.p1.yml", "compose.test.yml"],
        PHASES,
        [*PHASES, *OVERRIDES],
    ],
    ids=["p1", "p1+test", "p3", "p3+test"],
)
def test_docker_compose_config_accepts_the_files(files: list[str]) -> None:
    docker = _compose_cli()
    if docker is None:
        pytest.skip("`docker compose` (v2) is not installed: cannot validate with Compose itself")
    argv = [docker, "compose"] + [a for f in files for a in ("-f", str(DOCKER / f))]
    result = subprocess.run([*argv, "config", "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
