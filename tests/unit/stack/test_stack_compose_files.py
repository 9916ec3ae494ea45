"""Static checks of docker/: the Compose files and the Dockerfile keep their promises.

Compose's own validation of the files (`docker compose config`):
tests/integration/stack/test_stack_compose_config.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ai_suite_pytest.stack.compose import port_variable
from ai_suite_pytest.stack.spec import load_stack

from services.core.yamlfile import SafeLoader

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
PHASES = ["compose.p1.yml", "compose.p2.yml", "compose.p3.yml"]
OVERRIDES = ["compose.test.yml", "compose.test.p2.yml"]
ALL_FILES = PHASES + OVERRIDES
PYTHON_SERVICES = {"gateway": 8000, "rag": 8002, "mcp": 8020}


class _ComposeLoader(SafeLoader):
    """A safe loader (libyaml's when available) that accepts Compose's !reset / !override tags."""


_ComposeLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: {"tag": suffix, "value": None}
)


def load(name: str) -> dict[str, Any]:
    return yaml.load((DOCKER / name).read_text(), Loader=_ComposeLoader)


def services(name: str) -> dict[str, dict[str, Any]]:
    return load(name)["services"]


def all_services() -> list[tuple[str, str, dict[str, Any]]]:
    return [(f, n, body) for f in ALL_FILES for n, body in services(f).items()]


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_published_port_is_on_loopback_with_a_named_port_variable(name: str) -> None:
    for service, body in services(name).items():
        for port in body.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}:{service} publishes {port}"
            variable = port_variable(service)
            assert f"${{{variable}:-" in str(
                port
            ), f"{name}:{service}: host port must be ${{{variable}:-default}}, got {port}"


@pytest.mark.parametrize("name", ALL_FILES)
def test_no_host_path_is_hard_coded(name: str) -> None:
    for service, body in services(name).items():
        volumes = body.get("volumes", [])
        for volume in volumes if isinstance(volumes, list) else []:
            # ${VARIABLE:-named-volume}:/container/path[:ro]
            assert re.fullmatch(
                r"\$\{[A-Z_]+:-[a-z0-9-]+\}:/[a-z/]+(:ro)?", str(volume)
            ), f"{name}:{service}: {volume!r} must mount an env variable defaulting to a volume"


@pytest.mark.parametrize("name", PHASES)
def test_every_service_has_a_health_check(name: str) -> None:
    for service, body in services(name).items():
        if "image" not in body:
            continue  # an overlay adding settings to a service defined in an earlier phase
        check = body.get("healthcheck", {})
        assert check.get("test"), f"{name}:{service} has no health check"
        assert "interval" in check, f"{name}:{service}: health check without interval"


@pytest.mark.parametrize("name", PHASES)
def test_dependencies_wait_for_health(name: str) -> None:
    for service, body in services(name).items():
        for dependency, condition in (body.get("depends_on") or {}).items():
            assert condition["condition"] == "service_healthy", f"{service} -> {dependency}"


def test_python_services_use_the_one_image_non_root_and_their_ready_probe() -> None:
    seen = {}
    for name in PHASES:
        for service, body in services(name).items():
            if service in PYTHON_SERVICES and "image" in body:
                seen[service] = body
    assert set(seen) == set(PYTHON_SERVICES)
    for service, body in seen.items():
        port = PYTHON_SERVICES[service]
        assert body["image"] == "${AI_SUITE_IMAGE:-local-ai-suite:latest}"
        assert body["command"] == ["python", "-m", f"services.{service}"]
        assert body["user"] == "${AI_SUITE_UID:-10001}:${AI_SUITE_GID:-10001}"
        assert body["environment"]["AI_SUITE_DATA_DIR"] == "/data"
        assert f"127.0.0.1:{port}/ready" in " ".join(body["healthcheck"]["test"])
        assert body["ports"] == [f"127.0.0.1:${{{port_variable(service)}:-{port}}}:{port}"]


def test_qdrant_is_pinned_for_users() -> None:
    image = services("compose.p2.yml")["qdrant"]["image"]
    assert re.fullmatch(r"\$\{QDRANT_IMAGE:-qdrant/qdrant:v\d+\.\d+\.\d+\}", image), image


def test_test_override_swaps_inference_for_the_stub_and_keeps_qdrant_out() -> None:
    stub = services("compose.test.yml")["inference"]
    assert stub["image"] == "${AI_SUITE_IMAGE:-local-ai-suite:latest}"
    assert stub["command"][:3] == ["python", "-m", "tests.stubs.inference"]
    assert services("compose.test.p2.yml")["qdrant"]["profiles"] == ["needs-registry"]
    assert services("compose.test.p2.yml")["rag"]["environment"]["QDRANT_URL"] == ""


def test_dockerfile_has_base_arg_non_root_user_health_check_and_offline_install() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    # The Debian-built base by default (no registry); the workflows pass python:3.11-slim.
    assert re.search(r"^ARG BASE_IMAGE=local-ai-suite-base:bookworm$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user
    assert user[-1] not in {"root", "0", "0:0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*urllib\.request", text, re.M)
    assert "pip install --no-cache-dir --no-index --find-links /wheels" in text
    assert "AI_SUITE_HOST=0.0.0.0" in text


def test_scripts_never_swallow_failures() -> None:
    for script in ("build-images.sh", "dockerd.sh"):
        text = (DOCKER / script).read_text()
        assert "set -euo pipefail" in text
        assert "|| true" not in text, f"{script} hides a failure"


def test_the_e2e_stack_names_a_compose_service_for_every_required_service() -> None:
    spec = load_stack(ROOT / "tests" / "e2e" / "stack.yaml")
    defined = {n for f in spec.compose_files for n in services(Path(f).name)}
    for service in spec.services:
        if service.compose_service is None and service.optional:
            continue  # unavailable on the compose backend: its tests skip, saying so
        assert service.compose_service in defined, service.name
    assert all((spec.root / f).is_file() for f in spec.compose_files)
