"""The llama.cpp launcher's refusals: one clear line and exit code 3 when llama-cpp-python
is not installed (the stack plugin shows that line as the skip reason)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import llama_launcher

ROOT = Path(__file__).resolve().parents[3]


def launch(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.support.llama_launcher", "--port", "1", "--alias", "a:b",
         "--model-dir", str(tmp_path / "models"), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_missing_llama_python_says_run_make_llama(tmp_path: Path) -> None:
    result = launch(tmp_path, "--llama-python", str(tmp_path / "nope" / "python"))
    assert result.returncode == llama_launcher.NOT_INSTALLED_EXIT
    assert result.stderr.strip().splitlines() == [
        f"llama-cpp-python is not installed ({tmp_path / 'nope' / 'python'} missing):"
        " run `make llama` (builds llama.cpp, about 10 min the first time)"
    ]
    assert not (tmp_path / "models").exists()  # refused before writing anything


def test_a_python_without_llama_cpp_is_refused_too(tmp_path: Path) -> None:
    # LLAMA_PYTHON, as a user would set it, naming an interpreter without the package.
    env = {"PATH": "/usr/bin:/bin", "LLAMA_PYTHON": sys.executable}
    result = launch(tmp_path, env=env)
    assert result.returncode == llama_launcher.NOT_INSTALLED_EXIT
    assert "has no llama_cpp): run `make llama`" in result.stderr


def test_default_llama_python_is_the_repository_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_PYTHON", raising=False)
    assert llama_launcher.default_llama_python() == ROOT / ".venv-llama" / "bin" / "python"
    monkeypatch.setenv("LLAMA_PYTHON", "/opt/llama/bin/python")
    assert llama_launcher.default_llama_python() == Path("/opt/llama/bin/python")


def test_server_command_line() -> None:
    argv = llama_launcher.server_argv(Path("/py"), Path("/m.gguf"), "tiny-llama:q8", "h", 9)
    assert argv[:3] == ["/py", "-m", "llama_cpp.server"]
    pairs = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert pairs["--model_alias"] == "tiny-llama:q8"
    assert pairs["--embedding"] == "true"
    assert pairs["--interrupt_requests"] == "false"
    assert pairs["--port"] == "9"
