"""A fresh project outside the repository installs the plugins' distribution and uses each plugin.

The package reaches the project only through its distribution (sdist, then a wheel
built from that sdist), installed into a new virtual environment: a module left out
of the distribution or a wrong ``pytest11`` entry point fails here, where the
repository's own runs (which import from the checkout) would not notice. Each
plugin's test, stack file and ini are taken verbatim from the "Five-line example"
section of its page in docs/testing, so the docs cannot drift from what works.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from tests.support.external_env import (
    PROCS_PROJECT,
    PROJECT,
    REPO,
    RUN_TIMEOUT_S,
    ExternalEnv,
    install_with_pip,
    install_with_uv,
    write_constraints,
)

# Building and installing takes seconds with a warm uv cache, up to minutes from PyPI.
pytestmark = pytest.mark.timeout(600)

SOURCES = PROJECT / "src"
PACKAGES = ("ai_suite_pytest",)
PROCS_SOURCES = PROCS_PROJECT / "src"
PROCS_PACKAGES = ("ai_suite_procs",)
DOCS = REPO / "docs" / "testing"
PLUGIN_DOCS = {"stack": "stack.md", "sqlite_reset": "sqlite-reset.md", "metrics": "metrics.md"}
# The bound: what a team adopting the plugins takes on, the plugins included.
MAX_DISTRIBUTIONS = 12
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FILE_BLOCK_LANGUAGES = {"python", "yaml", "ini"}


@dataclass(frozen=True)
class Example:
    files: dict[str, str]  # file name -> content, as the docs show them
    output: list[str]  # unlabelled blocks of the section (sample failure output)


def five_line_example(doc: Path) -> Example:
    """The files of ``doc``'s "Five-line example" section; each starts with ``# NAME``."""
    text = doc.read_text(encoding="utf-8")
    match = re.search(r"^## Five-line example\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"{doc} has no '## Five-line example' section"
    example = Example(files={}, output=[])
    for language, body in FENCE.findall(match.group(1)):
        if language not in FILE_BLOCK_LANGUAGES:
            example.output.append(body)
            continue
        first, _, _ = body.partition("\n")
        name = first.removeprefix("# ").strip()
        assert first.startswith("# "), (
            f"{doc}: every {language} block of the five-line example must start with"
            f" '# FILENAME' naming the file it is, got {first!r}"
        )
        assert re.fullmatch(r"[\w.-]+", name), f"{doc}: {name!r} is not a plain file name"
        example.files[name] = body
    assert any(name.startswith("test_") for name in example.files), f"{doc}: no test file"
    return example


@pytest.fixture(scope="session")
def external(tmp_path_factory: pytest.TempPathFactory) -> ExternalEnv:
    """A virtual environment outside the repository with the built package and pytest.

    Built once per run: under xdist every worker's base temp folder sits in the run's
    own folder, and the first worker to take the lock builds while the others wait,
    then reuse it. Without xdist the base temp folder is the run's own.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    with FileLock(str(shared / "external-project.lock")):
        workdir = shared / "external-project"
        ready = workdir / "venv-ready"
        if ready.exists():
            return ExternalEnv(venv=Path(ready.read_text()), workdir=workdir)
        workdir.mkdir(exist_ok=True)
        env = _build_external(workdir)
        ready.write_text(str(env.venv))
        return env


def _build_external(workdir: Path) -> ExternalEnv:
    assert not workdir.resolve().is_relative_to(REPO), (
        f"{workdir} is inside the repository: pass a --basetemp outside {REPO}, or the"
        " project would not be a stranger to it"
    )
    (workdir / "tmp").mkdir()
    constraints = write_constraints(workdir / "constraints.txt")
    uv = shutil.which("uv")
    if uv is not None:
        venv = install_with_uv(uv, workdir, constraints)
    elif importlib.util.find_spec("ensurepip") is not None:
        venv = install_with_pip(workdir, constraints)
    else:
        pytest.skip("neither uv nor venv with pip (ensurepip) is available to make a fresh venv")
    return ExternalEnv(venv=venv, workdir=workdir)


def new_project(external: ExternalEnv, name: str, files: dict[str, str]) -> Path:
    project = external.workdir / "projects" / name
    project.mkdir(parents=True)
    for file_name, content in files.items():
        (project / file_name).write_text(content, encoding="utf-8")
    if "pytest.ini" not in files:
        # Pins the rootdir to the project, as any real project's config file would.
        (project / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    return project


def outcomes(report: Path) -> dict[str, str]:
    """``{test id: passed|failure|error|skipped}`` from a JUnit XML report."""
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        results[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    return results


def run_example(
    external: ExternalEnv, project: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    # -W error: the examples must not leak connections, files or threads either.
    result = external.pytest(
        project, "-W", "error", "-p", "no:cacheprovider", "--junitxml=report.xml"
    )
    report = project / "report.xml"
    # No report: pytest could not even start (e.g. a plugin failed to import); say why.
    assert report.exists(), f"pytest wrote no report:\n{result.stdout}\n{result.stderr}"
    return result, outcomes(report)


def package_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> set[str]:
    """Files of ``packages`` under ``root``, minus the bytecode Python writes next to them."""
    return {
        path.relative_to(root).as_posix()
        for package in packages
        for path in (root / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_every_file_of_the_checkout_packages_is_installed(external: ExternalEnv) -> None:
    # Modules started as `python -m ...` (the stack reaper) are imported by nothing
    # that the examples exercise: only this comparison notices if one is left out.
    site_packages = subprocess.run(
        [
            str(external.bin_dir / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        env=external.env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=True,
    ).stdout.strip()
    missing = package_files(SOURCES) - package_files(Path(site_packages))
    assert not missing, f"in the checkout but not in the installed distribution: {sorted(missing)}"
    procs = package_files(PROCS_SOURCES, PROCS_PACKAGES)
    missing = procs - package_files(Path(site_packages), PROCS_PACKAGES)
    assert not missing, f"in the checkout but not in the installed process core: {sorted(missing)}"


def installed(external: ExternalEnv) -> dict[str, list[str]]:
    """``{distribution: [top-level import names]}`` of the fresh venv."""
    code = (
        "import json, importlib.metadata as m;"
        "print(json.dumps({d.metadata['Name'].lower():"
        " sorted({f.parts[0] for f in (d.files or []) if f.suffix == '.py'"
        " and len(f.parts) > 1 and not f.parts[0].endswith('.dist-info')})"
        " for d in m.distributions()}))"
    )
    out = subprocess.run(
        [str(external.bin_dir / "python"), "-c", code],
        env=external.env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=True,
    ).stdout
    return dict(json.loads(out))


def test_the_plugins_install_nothing_of_the_platform(external: ExternalEnv) -> None:
    dists = installed(external)
    packages = {name for names in dists.values() for name in names}
    assert "services" not in packages, dists
    assert "local-ai-suite" not in dists, sorted(dists)
    assert dists["ai-suite-procs"] == ["ai_suite_procs"]  # the shared process core only
    # pip and setuptools come with `python -m venv`, not with the plugins.
    ours = sorted(set(dists) - {"pip", "setuptools"})
    assert len(ours) <= MAX_DISTRIBUTIONS, f"{len(ours)} distributions installed: {ours}"


def test_the_three_plugins_load_from_the_installed_distribution(external: ExternalEnv) -> None:
    project = new_project(external, "entry-points", {})
    result = external.pytest(project, "--trace-config", "--help")
    assert result.returncode == 0, result.stdout + result.stderr
    for option in ("--stack-backend", "--stack-file", "--metrics-contract", "sqlite_reset_migrate"):
        assert option in result.stdout, f"{option} missing from pytest --help:\n{result.stdout}"
    for plugin in PLUGIN_DOCS:
        module = f"ai_suite_pytest.{plugin}.plugin"
        loaded = re.search(
            rf"PLUGIN registered: <module '{re.escape(module)}' from '([^']+)'>", result.stdout
        )
        assert loaded, f"{module} was not registered by its entry point:\n{result.stdout}"
        assert Path(loaded.group(1)).is_relative_to(
            external.venv
        ), f"{module} came from {loaded.group(1)}, not from the installed distribution"


@pytest.mark.parametrize("plugin", list(PLUGIN_DOCS))
def test_the_documented_five_line_example_passes(external: ExternalEnv, plugin: str) -> None:
    example = five_line_example(DOCS / PLUGIN_DOCS[plugin])
    project = new_project(external, plugin, example.files)
    result, results = run_example(external, project)
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, output
    assert results, f"no test ran:\n{output}"
    assert set(results.values()) == {"passed"}, f"{results}\n{output}"


def test_a_failing_metrics_assertion_shows_the_documented_nearest_series(
    external: ExternalEnv,
) -> None:
    example = five_line_example(DOCS / PLUGIN_DOCS["metrics"])
    correct, typo = '{"queue": "default"}', '{"queue": "defualt"}'
    (test_name,) = [name for name in example.files if name.startswith("test_")]
    assert (
        example.files[test_name].count(correct) == 1
    ), f"the metrics example no longer has {correct}"
    assert len(example.output) == 1, "the metrics example should show one sample failure"
    files = {**example.files, test_name: example.files[test_name].replace(correct, typo)}
    result, results = run_example(external, new_project(external, "metrics-typo", files))
    assert result.returncode == 1, result.stdout + result.stderr
    assert set(results.values()) == {"failure"}, results
    for line in example.output[0].splitlines():
        assert (
            line in result.stdout
        ), f"documented line {line!r} not in the failure:\n{result.stdout}"
    # __tracebackhide__: the report points at the user's test, not into the plugin.
    assert "site-packages/ai_suite_pytest" not in result.stdout, result.stdout
