"""Helpers of the static monitoring checks: files, promtool and amtool runs (tests/unit and
tests/integration monitoring folders)."""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ai_suite_pytest.metrics.contract import Contract

from services.core.yamlfile import safe_load
from services.monitoring.boundaries import (
    failed_cases,
    load_boundaries,
    missing_boundaries,
    promtool_documents,
)
from services.monitoring.catalog import (
    Catalog,
    LabelValues,
    MetricDecl,
    RecordingRule,
    add_recording_rules,
    prometheus_builtins,
)
from services.monitoring.requirements import (
    alert_names,
    missing_required_alerts,
    pinned_route_timings,
    required_alerts,
    route_timing_problems,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
PROMETHEUS_DIR = DOCKER / "prometheus"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
ALERTMANAGER_FILE = DOCKER / "alertmanager" / "alertmanager.yml"
CONTRACT_FILE = ROOT / "tests" / "metrics_contract.yaml"
INSTALL_HINT = "run `make system-deps` (Debian packages prometheus, prometheus-alertmanager)"


def binary(name: str) -> str:
    """The path of ``name``, or skip the test saying what is missing and how to get it."""
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed: {INSTALL_HINT}")
    return found


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@functools.cache
def _parsed(path: Path, mtime: float) -> Any:
    return safe_load(path.read_text())


def load_yaml(path: Path) -> Any:
    """``path`` parsed (libyaml when available), a fresh copy each call."""
    return copy.deepcopy(_parsed(path, path.stat().st_mtime))


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_DUMPER, sort_keys=False)


def run(argv: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=60, check=False)


def rule_groups(path: Path) -> list[dict]:
    """The ``rule_files`` and ``groups`` of a rules file."""
    return load_yaml(path)["groups"]


def recording_rules(rules_dir: Path = PROMETHEUS_DIR / "rules") -> list[RecordingRule]:
    return [
        RecordingRule(rule["record"], rule["expr"], rule.get("labels") or {})
        for path in sorted(rules_dir.glob("*.yml"))
        for group in rule_groups(path)
        for rule in group["rules"]
        if "record" in rule
    ]


def build_catalog(contract: Contract, rules_dir: Path = PROMETHEUS_DIR / "rules") -> Catalog:
    """The metrics contract, Prometheus' own series and the recording rules' outputs."""
    catalog = Catalog(standard=contract.standard)
    for name, spec in contract.metrics.items():
        labels = {k: LabelValues(rule.values, rule.regex) for k, rule in spec.labels.items()}
        catalog.add(MetricDecl(name, spec.type, labels))
    for decl in prometheus_builtins():
        catalog.add(decl)
    add_recording_rules(catalog, recording_rules(rules_dir))
    return catalog


# --- promtool test rules, one process per test group --------------------------------------


@dataclass(frozen=True)
class RuleTestGroup:
    file: Path
    index: int
    name: str

    @property
    def id(self) -> str:
        return f"{self.file.name}::{self.name}"


def rule_test_groups(directory: Path = RULE_TESTS_DIR) -> list[RuleTestGroup]:
    groups = []
    for path in sorted(directory.glob("*.yml")):
        for index, group in enumerate(load_yaml(path).get("tests") or []):
            groups.append(RuleTestGroup(path, index, str(group.get("name") or f"group {index}")))
    return groups


def write_single_group(group: RuleTestGroup, out_dir: Path) -> Path:
    """A test file with only ``group``, its rule_files made absolute."""
    data = load_yaml(group.file)
    data["tests"] = [data["tests"][group.index]]
    data["rule_files"] = [str((group.file.parent / p).resolve()) for p in data["rule_files"]]
    path = out_dir / f"{group.file.stem}-{group.index}.yml"
    path.write_text(dump_yaml(data))
    return path


class PromtoolBatch:
    """Runs ``promtool test rules`` for every group in a small pool; results on demand."""

    def __init__(self, promtool: str, groups: list[RuleTestGroup], work: Path) -> None:
        # A few at a time: promtool mostly waits, but dozens at once only thrash two cores.
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="promtool")
        self.argv = {
            group.id: [promtool, "test", "rules", str(write_single_group(group, work))]
            for group in groups
        }
        self.futures = {gid: self.pool.submit(run, argv) for gid, argv in self.argv.items()}

    def result(self, group_id: str) -> tuple[int, str]:
        try:
            done = self.futures[group_id].result()
        except OSError:
            # Seen once on a loaded CI machine: exec failed transiently. Run it again
            # here so that a real promtool failure still shows as itself.
            done = run(self.argv[group_id])
        return done.returncode, done.stdout + done.stderr

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()
        self.pool.shutdown(wait=True)


# --- boundary tests, required alerts and route timings (issue 14) ---------------------------

BOUNDARIES_FILE = PROMETHEUS_DIR / "boundaries.yml"
REQUIRED_ALERTS_FILE = PROMETHEUS_DIR / "required_alerts.yml"
ROUTE_TIMINGS_FILE = DOCKER / "alertmanager" / "route_timings.yml"


@dataclass(frozen=True)
class MonitoringSources:
    """The files the monitoring checks read; a mutation test points them at a copy."""

    rules_dir: Path = PROMETHEUS_DIR / "rules"
    boundaries: Path = BOUNDARIES_FILE
    required: Path = REQUIRED_ALERTS_FILE
    alertmanager: Path = ALERTMANAGER_FILE
    route_timings: Path = ROUTE_TIMINGS_FILE

    def rule_files(self) -> list[Path]:
        # prometheus.yml's order: recording rules before the alerts that read them.
        listed = load_yaml(PROMETHEUS_DIR / "prometheus.yml")["rule_files"]
        return [self.rules_dir / Path(p).name for p in listed]

    def copy_to(self, target: Path) -> MonitoringSources:
        shutil.copytree(self.rules_dir, target / "rules")
        copies = {}
        for field_name in ("boundaries", "required", "alertmanager", "route_timings"):
            source = getattr(self, field_name)
            copies[field_name] = target / source.name
            shutil.copy(source, copies[field_name])
        return MonitoringSources(rules_dir=target / "rules", **copies)


def static_problems(sources: MonitoringSources) -> list[str]:
    """Everything checkable without promtool: specs for every alert, required alerts, timings."""
    alerts = alert_names(sources.rule_files())
    boundaries = load_boundaries(sources.boundaries)
    problems = [
        f"alert {name} has no boundary spec in {sources.boundaries.name}"
        for name in missing_boundaries(alerts, boundaries)
    ]
    problems += [
        f"boundary spec {name} names no alert of the rules"
        for name in sorted({b.alert for b in boundaries} - set(alerts))
    ]
    problems += missing_required_alerts(required_alerts(sources.required), alerts)
    problems += route_timing_problems(
        load_yaml(sources.alertmanager), pinned_route_timings(sources.route_timings)
    )
    return problems


def boundary_failures(promtool: str, sources: MonitoringSources, work: Path) -> list[str]:
    """The boundary cases that fail under promtool, each named "boundary <alert>: <case>"."""
    files = sources.rule_files()
    defined_in = {name: path for path in files for name in alert_names([path])}
    by_file: dict[Path, list] = {}
    for boundary in load_boundaries(sources.boundaries):
        # An alert without a rule is reported by static_problems; run it against all files.
        by_file.setdefault(defined_in.get(boundary.alert, files[-1]), []).append(boundary)
    failures = []
    for alert_file, boundaries in by_file.items():
        # Only the alert's own file and the shared recording rules: promtool evaluates every
        # loaded rule at every step, and the SLO rules alone would triple the time.
        rule_files = list(dict.fromkeys([files[0], alert_file]))
        for interval, document in promtool_documents(boundaries, rule_files).items():
            path = work / f"boundaries-{alert_file.stem}-{interval}.yml"
            path.write_text(dump_yaml(document))
            result = run([promtool, "test", "rules", str(path)])
            if result.returncode != 0:
                output = result.stdout + result.stderr
                # A file promtool cannot even load names no case: report its whole output.
                failures += failed_cases(output, document) or [output]
    return failures


def monitoring_problems(promtool: str, sources: MonitoringSources, work: Path) -> list[str]:
    return static_problems(sources) + boundary_failures(promtool, sources, work)
