"""The Compose phases `make up-p1..p3` and `make up-monitoring` start, read as plain YAML.

Each phase is the list of files ``docker/phases.sh files PHASE`` prints (the script the
make targets run), merged here the way Compose merges services (later files add keys), so
every check is about what a phase really starts: every service has a health check, each
phase contains the one before, host ports come from the environment with a default, and
no third-party image floats on ``latest``. Compose's own validation of the same file
lists: tests/integration/docker/test_compose_phases_live.py.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.core.yamlfile import SafeLoader

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
SCRIPT = DOCKER / "phases.sh"
MONITORING = DOCKER / "compose.monitoring.yml"
PHASES = ("p1", "p2", "p3")
# Explicit modes: the script then decides without asking Docker about images.
MODES = [
    {"INFERENCE_MODE": "llama-cpp", "QDRANT_MODE": "server"},
    {"INFERENCE_MODE": "tiny", "QDRANT_MODE": "embedded"},
]
PORT = re.compile(r"127\.0\.0\.1:\$\{([A-Z_]+_PORT):-(\d+)\}:(\d+)")
IMAGE = re.compile(r"\$\{([A-Z_]+_IMAGE):-([^}]+)\}")
# Images this project builds itself (docker/build-images.sh): `latest` is the build.
OWN_IMAGES = ("local-ai-suite:", "local-ai-suite-llama:")


class _ComposeLoader(SafeLoader):
    """Keeps Compose's ``!reset`` tag as a marker: the merge below empties the key."""


_RESET = object()
_ComposeLoader.add_constructor("!reset", lambda loader, node: _RESET)


def load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_ComposeLoader)


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge of one service: mappings merge, `!reset` removes, the rest replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        if value is _RESET:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def phase_files(phase: str, modes: dict[str, str]) -> list[Path]:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed: docker/phases.sh cannot run")
    env = {"PATH": "/usr/bin:/bin", **modes}
    result = subprocess.run(
        ["bash", str(SCRIPT), "files", phase], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert words[::2] == ["-f"] * (len(words) // 2), result.stdout
    return [Path(word) for word in words[1::2]]


def started_services(files: list[Path]) -> dict[str, dict[str, Any]]:
    """The services of the merged files that `up` starts (no profile enabled)."""
    services: dict[str, dict[str, Any]] = {}
    for path in files:
        for name, body in (load(path).get("services") or {}).items():
            services[name] = merge(services.get(name, {}), body)
    return {name: body for name, body in services.items() if not body.get("profiles")}


@pytest.fixture(scope="module", params=MODES, ids=lambda m: "-".join(m.values()))
def phases(request: pytest.FixtureRequest) -> dict[str, list[Path]]:
    return {phase: phase_files(phase, request.param) for phase in PHASES}


def test_each_phase_extends_the_one_before(phases: dict[str, list[Path]]) -> None:
    assert phases["p1"][0] == DOCKER / "compose.p1.yml"
    for before, after in itertools.pairwise(PHASES):
        assert phases[after][: len(phases[before])] == phases[before]
        smaller, larger = started_services(phases[before]), started_services(phases[after])
        assert set(smaller) < set(larger), f"{after} does not add services to {before}"
        for name, body in smaller.items():
            # Later phases add settings to a service (the gateway's RAG_URL), never change
            # what it runs.
            assert larger[name]["image"] == body["image"], name
            assert larger[name].get("command") == body.get("command"), name


def test_the_phases_start_what_the_plan_names(phases: dict[str, list[Path]]) -> None:
    assert set(started_services(phases["p1"])) == {"inference", "gateway"}
    p2 = set(started_services(phases["p2"]))
    assert {"inference", "gateway", "rag"} <= p2 <= {"inference", "gateway", "rag", "qdrant"}
    assert set(started_services(phases["p3"])) == p2 | {"mcp"}


def test_qdrant_runs_unless_the_embedded_overlay_is_chosen() -> None:
    server = started_services(phase_files("p2", MODES[0]))
    embedded = started_services(phase_files("p2", MODES[1]))
    assert "qdrant" in server
    assert server["rag"]["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert "qdrant" not in embedded
    assert embedded["rag"]["environment"]["QDRANT_URL"] == ""
    assert "depends_on" not in embedded["rag"]


def test_tiny_inference_is_the_llama_cpp_test_image_on_its_own_model() -> None:
    real = started_services(phase_files("p1", MODES[0]))["inference"]
    tiny = started_services(phase_files("p1", MODES[1]))["inference"]
    assert real["image"].startswith("${INFERENCE_IMAGE:-ghcr.io/ggml-org/llama.cpp:")
    assert "/models/${INFERENCE_MODEL:-model.gguf}" in real["command"]
    assert tiny["image"] == "${AI_SUITE_LLAMA_IMAGE:-local-ai-suite-llama:latest}"
    # The image's own command (the launcher writes the model) and no models volume.
    assert "command" not in tiny
    assert "volumes" not in tiny
    assert "/v1/models" in " ".join(tiny["healthcheck"]["test"])


def every_phase_service(phases: dict[str, list[Path]]) -> list[tuple[str, str, dict[str, Any]]]:
    rows = [(p, n, b) for p in PHASES for n, b in started_services(phases[p]).items()]
    rows += [("monitoring", n, b) for n, b in load(MONITORING)["services"].items()]
    return rows


def test_every_service_of_every_phase_has_a_health_check(phases: dict[str, list[Path]]) -> None:
    for phase, name, body in every_phase_service(phases):
        check = body.get("healthcheck") or {}
        assert check.get("test"), f"{phase}:{name} has no health check: `up --wait` cannot wait"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{phase}:{name}"
        assert {"interval", "timeout", "retries"} <= set(check), f"{phase}:{name}"
        for dependency, condition in (body.get("depends_on") or {}).items():
            assert isinstance(condition, dict), f"{phase}:{name} -> {dependency}: no condition"
            assert condition["condition"] == "service_healthy", f"{phase}:{name} -> {dependency}"


def test_host_ports_come_from_the_environment_with_a_default(
    phases: dict[str, list[Path]],
) -> None:
    for phase, name, body in every_phase_service(phases):
        if phase == "monitoring":
            # Host networking (compose.monitoring.yml says why): nothing is published.
            assert body["network_mode"] == "host", name
            assert "ports" not in body, name
            continue
        assert body.get("ports"), f"{phase}:{name} publishes no port"
        for port in body["ports"]:
            match = PORT.fullmatch(str(port))
            assert match, f"{phase}:{name}: {port} is not 127.0.0.1:${{NAME_PORT:-default}}:port"
            assert match.group(1) == f"{name.upper()}_PORT", port


def test_no_third_party_image_floats_on_latest(phases: dict[str, list[Path]]) -> None:
    for phase, name, body in every_phase_service(phases):
        match = IMAGE.fullmatch(body["image"])
        assert match, f"{phase}:{name}: image {body['image']} is not ${{NAME_IMAGE:-default}}"
        default = match.group(2)
        repository, _, tag = default.rpartition(":")
        assert repository, f"{phase}:{name}: {default} names no tag"
        assert "/" not in tag, f"{phase}:{name}: {default} names no tag"
        if default.startswith(OWN_IMAGES):
            continue  # built here by docker/build-images.sh
        # A version or build number, not `latest`, `stable` or a bare variant (`server`).
        assert re.search(r"\d", tag), f"{phase}:{name}: {default} is not pinned to a version"


def test_make_targets_run_the_phases() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for phase in (*PHASES, "monitoring"):
        target = f"up-{phase}"
        recipe = re.search(rf"^{target}:.*\n\t(.+)$", makefile, re.MULTILINE)
        assert recipe, f"make {target} is missing"
        assert recipe.group(1) == f"docker/phases.sh up {phase}"
    assert re.search(r"^down:.*\n\tdocker/phases.sh down", makefile, re.MULTILINE)


def test_the_phase_script_never_hides_a_failure() -> None:
    text = SCRIPT.read_text(encoding="utf-8")
    assert "set -euo pipefail" in text
    assert "|| true" not in text
    assert "|| echo" not in text
