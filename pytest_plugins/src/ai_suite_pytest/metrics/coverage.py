"""Metrics coverage: which contract metrics (and enumerated label values) a run exercised.

A metric counts as exercised when any of its series changed (or appeared)
between the start and the end of a watch. Standard client-library families are
not part of the contract's coverage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ai_suite_pytest.metrics.contract import Contract
from ai_suite_pytest.metrics.exposition import Labels, Snapshot


def changed_series(before: Snapshot, after: Snapshot) -> dict[str, set[Labels]]:
    """Family name -> label sets (without ``le``/``quantile``) whose samples changed."""
    changed: dict[str, set[Labels]] = {}
    old = before.samples
    for name, family in after.families.items():
        for key, value in family.samples.items():
            if old.get(key) != value:
                labels = tuple((k, v) for k, v in key[1] if k not in ("le", "quantile"))
                changed.setdefault(name, set()).add(labels)
    return changed


@dataclass
class CoverageData:
    """What the run exercised; mergeable across xdist workers through JSON."""

    exercised: dict[str, set[str]] = field(default_factory=dict)  # metric -> {"label=value"}
    services: set[str] = field(default_factory=set)
    watched_without_service: bool = False

    def record(self, before: Snapshot, after: Snapshot, service: str | None) -> None:
        if service:
            self.services.add(service)
        else:
            self.watched_without_service = True
        for name, label_sets in changed_series(before, after).items():
            seen = self.exercised.setdefault(name, set())
            for labels in label_sets:
                seen.update(f"{k}={v}" for k, v in labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "exercised": {k: sorted(v) for k, v in self.exercised.items()},
            "services": sorted(self.services),
            "watched_without_service": self.watched_without_service,
        }

    def merge_json(self, data: dict[str, Any]) -> None:
        for name, values in data.get("exercised", {}).items():
            self.exercised.setdefault(name, set()).update(values)
        self.services.update(data.get("services", []))
        self.watched_without_service |= bool(data.get("watched_without_service"))

    @property
    def empty(self) -> bool:
        return not self.services and not self.watched_without_service


@dataclass
class CoverageReport:
    covered: list[str]
    uncovered: list[str]
    unseen_values: dict[str, list[str]]  # metric -> enumerated label values never exercised
    services: list[str]

    @property
    def total(self) -> int:
        return len(self.covered) + len(self.uncovered)

    @property
    def percent(self) -> float:
        return 100.0 * len(self.covered) / self.total if self.total else 100.0

    def lines(self) -> list[str]:
        scope = ", ".join(self.services) if self.services else "all services"
        out = [
            f"metrics coverage ({scope}): {len(self.covered)}/{self.total} contract metrics "
            f"exercised ({self.percent:.1f}%)"
        ]
        out += [f"  not exercised: {name}" for name in self.uncovered]
        for name, values in sorted(self.unseen_values.items()):
            out.append(f"  {name}: label values never exercised: {', '.join(values)}")
        return out


def build_report(contract: Contract, data: CoverageData) -> CoverageReport:
    if data.services and not data.watched_without_service:
        specs = {
            n: s
            for n, s in contract.metrics.items()
            if s.services is None or s.services & data.services
        }
    else:
        specs = dict(contract.metrics)
    covered = sorted(n for n in specs if n in data.exercised)
    uncovered = sorted(n for n in specs if n not in data.exercised)
    unseen: dict[str, list[str]] = {}
    for name in covered:
        seen = data.exercised[name]
        missing = [
            f"{label}={value}"
            for label, rule in sorted(specs[name].labels.items())
            if rule.values is not None
            for value in sorted(rule.values)
            if f"{label}={value}" not in seen
        ]
        if missing:
            unseen[name] = missing
    return CoverageReport(covered, uncovered, unseen, sorted(data.services))
