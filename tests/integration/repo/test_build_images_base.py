"""docker/build-images.sh: a BASE_IMAGE that cannot be pulled fails the build, saying how to
get the Debian-built base instead (no silent fallback to another base)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False)
    return info.returncode == 0


def _build_images(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "docker" / "build-images.sh"), *args],
        env={
            **os.environ,
            "BUILD_DIR": str(tmp_path),
            "IMAGE": "local-ai-suite-never:built",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_an_unknown_argument_is_a_usage_error(tmp_path: Path) -> None:
    completed = _build_images(tmp_path, "--bogus")
    assert completed.returncode == 2
    assert "unknown argument --bogus" in completed.stderr
    assert "--context-only" in completed.stderr


def test_a_base_image_that_cannot_be_pulled_fails_the_build(tmp_path: Path) -> None:
    if not _engine_answers():
        pytest.skip("no Docker engine answers `docker info` (make docker-up)")
    # Port 9 (discard) on loopback: nothing serves a registry there, the pull fails at once.
    completed = _build_images(tmp_path, BASE_IMAGE="127.0.0.1:9/no-such-base:1")
    assert completed.returncode == 1
    assert "cannot pull BASE_IMAGE=127.0.0.1:9/no-such-base:1" in completed.stderr
    assert "unset BASE_IMAGE to build the Debian base here" in completed.stderr
    assert "wheels" not in completed.stdout  # it stopped before building anything
