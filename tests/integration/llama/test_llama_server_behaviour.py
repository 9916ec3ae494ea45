"""llama-cpp-python's server as it behaves by default, on its own (not through the stack):
facts docs/backends.md states that the stack's llama service, configured otherwise,
cannot show."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support import llama_launcher
from tests.support.live import free_port
from tests.support.processes import wait_until

ROOT = Path(__file__).resolve().parents[3]
PROMPT = [{"role": "user", "content": "hello tiny llama"}]


@pytest.fixture
def interrupting_server(tmp_path: Path) -> Iterator[str]:
    """The server with llama-cpp-python's default --interrupt_requests true."""
    reason = llama_launcher.not_installed_reason(llama_launcher.default_llama_python())
    if reason is not None:
        pytest.skip(reason)
    port = free_port()
    log = (tmp_path / "llama.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.llama_launcher", "--port", str(port),
         "--alias", "tiny", "--model-dir", str(tmp_path), "--interrupt-requests"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/v1"

        def up_or_dead() -> bool:
            return models_answer(f"{base}/models") or process.poll() is not None

        assert wait_until(up_or_dead, timeout=120)
        assert process.poll() is None, (tmp_path / "llama.log").read_text()
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def models_answer(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_new_request_ends_the_running_stream_by_default(interrupting_server: str) -> None:
    with openai.OpenAI(base_url=interrupting_server, api_key="x", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="tiny", messages=PROMPT, max_tokens=3000, stream=True
        )
        chunks = iter(stream)
        next(c for c in chunks if c.choices and c.choices[0].delta.content)
        answers: list[str | None] = []
        other = threading.Thread(
            target=lambda: answers.append(
                client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=2)
                .choices[0]
                .finish_reason
            )
        )
        other.start()
        rest = list(chunks)  # ends early, cleanly: [DONE] without a finish_reason
        other.join(timeout=120)
    assert answers == ["length"]  # the newcomer was served
    assert len(rest) < 2999
    assert all(c.choices[0].finish_reason is None for c in rest if c.choices)
