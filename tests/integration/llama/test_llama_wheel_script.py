"""docker/llama/wheel.sh, the one place llama.cpp is compiled (for `make llama` and the
llama test image): it reuses a wheel it built before, keeps a failed build's log, and
never leaves a half-built wheel where the next run would take it.

A real compile takes minutes, so ``PYTHON`` is a stand-in that plays pip's part (the
script's own logic is what is tested); the real build runs in `make llama`, which CI
requires (LLAMA_REQUIRED=1).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "docker" / "llama" / "wheel.sh"
VERSION = next(
    line.split("==")[1].strip()
    for line in (ROOT / "tests" / "llama-requirements.txt").read_text().splitlines()
    if line.startswith("llama-cpp-python[server]==")
)
WHEEL = f"llama_cpp_python-{VERSION}-py3-none-linux_x86_64.whl"


def fake_pip(tmp_path: Path, body: str) -> Path:
    """An executable standing in for ``python -m pip wheel ... -w DIR ...``."""
    python = tmp_path / "fake-python"
    python.write_text(
        "#!/bin/bash\n"
        'out=""; prev=""\n'
        'for a in "$@"; do [ "$prev" = "-w" ] && out="$a"; prev="$a"; done\n'
        f"{body}\n"
    )
    python.chmod(0o755)
    return python


def run(tmp_path: Path, python: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "PYTHON": str(python),
        "LLAMA_WHEEL_DIR": str(tmp_path / "wheels"),
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_build_is_kept_under_its_version_and_options_then_reused(tmp_path: Path) -> None:
    python = fake_pip(
        tmp_path,
        'echo "[ 50%] Building CXX object llama.cpp"; mkdir -p "$out"; '
        f'touch "$out/{WHEEL}"; echo built >> "{tmp_path}/builds"',
    )
    first = run(tmp_path, python)
    assert first.returncode == 0, first.stderr
    folder = Path(first.stdout.strip())
    assert folder.parent == tmp_path / "wheels"
    assert folder.name.startswith(f"{VERSION}-")  # the version and a digest of the options
    assert (folder / WHEEL).is_file()
    assert "building llama.cpp's server" in first.stderr
    assert "built in" in first.stderr

    second = run(tmp_path, python)
    assert second.returncode == 0, second.stderr
    assert Path(second.stdout.strip()) == folder
    assert f"reusing {WHEEL}" in second.stderr
    assert (tmp_path / "builds").read_text() == "built\n"  # compiled once


def test_a_failed_build_says_so_keeps_its_log_and_leaves_no_wheel(tmp_path: Path) -> None:
    python = fake_pip(
        tmp_path,
        'echo "[ 5%] Building C object ggml"; echo "error: no space left on device"; '
        f'mkdir -p "$out"; touch "$out/{WHEEL}"; exit 1',
    )
    result = run(tmp_path, python)
    assert result.returncode == 1
    assert result.stdout == ""  # nothing a caller could take for a wheel folder
    assert "error: no space left on device" in result.stderr  # the log's tail
    assert "building llama-cpp-python" in result.stderr
    assert "failed" in result.stderr
    logs = list((tmp_path / "wheels").glob("build-*.log"))
    assert len(logs) == 1
    assert "no space left" in logs[0].read_text()
    assert not list((tmp_path / "wheels").rglob("*.whl"))  # never half a result

    # The next run builds again instead of taking anything from the failed one.
    retried = run(tmp_path, fake_pip(tmp_path, f'mkdir -p "$out"; touch "$out/{WHEEL}"'))
    assert retried.returncode == 0, retried.stderr
    assert "building llama.cpp's server" in retried.stderr
