"""docs/rag.md's shell examples work as printed, against a real ``ai-suite up``.

Every ```bash block preceded by ``<!-- run: NAME -->`` is run with bash, unchanged
except for the gateway's address (the doc's ``127.0.0.1:8000`` becomes the test
platform's port), from a checkout-like folder: the platform's working directory with
``.venv`` linked to this checkout's and a copy of ``docs/`` and ``README.md``, as a
user's clone has them. Each curl prints one JSON document; their sequence is checked.
The JSON query example is sent as printed too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Platform

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "rag.md"
RUN_BLOCK = re.compile(r"<!-- run: ([\w-]+) -->\n```bash\n(.*?)\n```", re.S)
ANY_BASH = re.compile(r"```bash\n(.*?)\n```", re.S)
DOC_GATEWAY = "http://127.0.0.1:8000"


def blocks() -> dict[str, str]:
    found = RUN_BLOCK.findall(DOC.read_text())
    assert len({name for name, _ in found}) == len(found), "run names must be unique"
    return dict(found)


def json_outputs(stdout: str) -> list[Any]:
    """curl -s prints the bodies back to back; split them into JSON documents."""
    decoder = json.JSONDecoder()
    outputs, position = [], 0
    text = stdout.strip()
    while position < len(text):
        value, end = decoder.raw_decode(text, position)
        outputs.append(value)
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    return outputs


def test_every_curl_example_is_run() -> None:
    with_curl = [block for block in ANY_BASH.findall(DOC.read_text()) if "curl" in block]
    assert sorted(with_curl) == sorted(blocks().values())
    assert set(blocks()) == {"quickstart", "cross-language"}


@pytest.fixture(scope="module")
def checkout(shared_platform: Platform) -> Path:
    cwd = shared_platform.cwd
    (cwd / ".venv").symlink_to(ROOT / ".venv")
    shutil.copytree(ROOT / "docs", cwd / "docs")
    shutil.copy(ROOT / "README.md", cwd / "README.md")
    return cwd


def run(platform: Platform, cwd: Path, name: str) -> list[Any]:
    script = blocks()[name].replace(DOC_GATEWAY, platform.gateway_url)
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    outputs = json_outputs(done.stdout)
    for output in outputs:
        assert "error" not in output, output
    return outputs


def test_quickstart(shared_platform: Platform, checkout: Path) -> None:
    indexed, answer = run(shared_platform, checkout, "quickstart")
    assert indexed["collection"] == "default"
    assert indexed["chunks_indexed"] > 0
    assert {d["id"] for d in indexed["documents"]} >= {"README.md", "docs/rag.md"}
    assert answer["results"], answer
    assert any("make test" in hit["text"] for hit in answer["results"]), answer["results"]
    # The JSON query example, sent as printed (to the collection the quickstart made).
    example = re.search(r"Query:\n\n```json\n(.*?)\n```", DOC.read_text(), re.S)
    assert example is not None
    key = shared_platform.cli("keys", "create", "--user", "carol", "--role", "viewer")
    assert key.returncode == 0, key.stderr
    response = httpx.post(
        f"{shared_platform.gateway_url}/v1/rag/query",
        json=json.loads(example.group(1)),
        headers={"Authorization": f"Bearer {key.stdout.strip()}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    # The documented response fields, no more and no fewer.
    assert set(response.json()) == {"collection", "cached", "min_score", "results"}


def test_cross_language_and_nothing_relevant(shared_platform: Platform, checkout: Path) -> None:
    indexed, korean, unrelated = run(shared_platform, checkout, "cross-language")
    assert indexed["chunks_indexed"] == 1
    assert [hit["document_id"] for hit in korean["results"]] == ["keys"]
    assert unrelated["results"] == []
    assert unrelated["answer"]["found"] is False
