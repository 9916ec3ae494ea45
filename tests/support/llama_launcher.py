"""Start llama.cpp's OpenAI-compatible server (llama-cpp-python) on the tiny test model.

    python -m tests.support.llama_launcher --port P --alias tiny-llama:q8 --model-dir DIR

Writes the model (tests/support/tiny_gguf.py) into DIR if it is not there yet, then
*replaces itself* (``os.execv``) with ``<llama python> -m llama_cpp.server``: the process
the stack plugin started and recorded is the server itself, so its stop, kill and pause
reach the server and nothing sits in between.

llama-cpp-python lives in its own virtual environment, ``.venv-llama`` (``make llama``),
not in the project's uv-locked ``.venv``: ``uv sync`` is exact and would remove it, and
``make up`` must not compile llama.cpp. Where it is: ``--llama-python``, else the
environment variable ``LLAMA_PYTHON``, else ``<repo>/.venv-llama/bin/python``. If it is
missing, the launcher exits with code 3 and one line saying how to install it, which the
stack plugin shows as the reason the tests that need the server are skipped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tests.support.tiny_gguf import DEFAULT_SEED, write_model

ROOT = Path(__file__).resolve().parents[2]
NOT_INSTALLED_EXIT = 3
# Small and predictable: one thread (the machines have 2 cores, shared with the tests),
# a fixed seed for requests that bring none. 4096 tokens of context cost 2 MB of KV
# cache with this model and leave room for the long streams the fault tests cut off.
# The launcher also passes --interrupt_requests false unless told otherwise: by default
# llama-cpp-python ends a running stream with [DONE] (no finish_reason) as soon as another
# request arrives (test_a_new_request_ends_the_running_stream_by_default); xdist workers
# share one server, so requests must queue instead (it runs one at a time either way).
SERVER_OPTIONS = ["--n_ctx", "4096", "--n_threads", "1", "--n_threads_batch", "1", "--seed", "1"]


def default_llama_python() -> Path:
    configured = os.environ.get("LLAMA_PYTHON")
    return Path(configured) if configured else ROOT / ".venv-llama" / "bin" / "python"


def not_installed_reason(python: Path) -> str | None:
    """Why ``python`` cannot run llama-cpp-python's server, or None when it can."""
    how = "run `make llama` (builds llama.cpp, about 10 min the first time)"
    if not python.exists():
        return f"llama-cpp-python is not installed ({_shown(python)} missing): {how}"
    # find_spec, not an import: importing llama_cpp loads the library (about a second);
    # a broken build still fails loudly, with its own traceback, when the server starts.
    check = "import importlib.util as u, sys; sys.exit(not u.find_spec('llama_cpp'))"
    probe = subprocess.run(
        [str(python), "-c", check],
        env=server_environment(),
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"llama-cpp-python is not installed ({_shown(python)} has no llama_cpp): {how}"
    return None


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def server_environment() -> dict[str, str]:
    """This environment without what points Python at the project's own packages: the
    server runs in another virtual environment, with its own versions of FastAPI and
    pydantic, which a PYTHONPATH into .venv would shadow."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}


def model_path(model_dir: Path, seed: int) -> Path:
    # The seed is in the name: another seed is another model, never a stale file.
    return model_dir / f"tiny-llama-{seed}.gguf"


def server_argv(
    python: Path,
    model: Path,
    alias: str,
    host: str,
    port: int,
    api_key: str | None = None,
    interrupt_requests: bool = False,
) -> list[str]:
    key = ["--api_key", api_key] if api_key else []
    return [
        str(python),
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        alias,
        "--host",
        host,
        "--port",
        str(port),
        "--embedding",
        "true",
        *SERVER_OPTIONS,
        "--interrupt_requests",
        "true" if interrupt_requests else "false",
        *key,
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alias", required=True, help="the model name the server lists")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the model's weights")
    parser.add_argument("--llama-python", type=Path, default=None)
    parser.add_argument("--api-key", default=None, help="clients must send it as a Bearer key")
    parser.add_argument(
        "--interrupt-requests",
        action="store_true",
        help="llama-cpp-python's default: a new request ends the running stream",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    python = args.llama_python or default_llama_python()
    reason = not_installed_reason(python)
    if reason is not None:
        print(reason, file=sys.stderr, flush=True)
        sys.exit(NOT_INSTALLED_EXIT)
    model = model_path(args.model_dir, args.seed)
    if not model.exists():
        write_model(model, args.seed)  # atomic: a racing launcher writes the same bytes
    argv_out = server_argv(
        python, model, args.alias, args.host, args.port, args.api_key, args.interrupt_requests
    )
    shown = [("***" if args.api_key and part == args.api_key else part) for part in argv_out]
    print("starting: " + " ".join(shown), file=sys.stderr, flush=True)
    os.execve(argv_out[0], argv_out, server_environment())


if __name__ == "__main__":
    main()
