"""Parsed expositions: families and samples of one scrape, the same for text and registries.

Names follow what a PromQL user types: a counter family is called by its exposed
name (``http_requests_total``), a histogram by its base name. ``*_created``
timestamps that client libraries add are dropped: they change whenever a series
is born and only add noise to diffs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
SeriesKey = tuple[str, Labels]  # (sample name, labels)

_CREATED_PARENTS = {"counter", "histogram", "summary", "gaugehistogram"}


def labels_key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def format_series(name: str, labels: Labels) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{name}{{{inner}}}" if inner else name


@dataclass
class Family:
    """One metric family as exposed."""

    name: str  # exposed name: counters with their _total suffix
    type: str
    help: str
    unit: str = ""
    samples: dict[SeriesKey, float] = field(default_factory=dict)

    def label_names(self) -> set[str]:
        """Label names of the family's series, without ``le``/``quantile``."""
        names = {k for (_sample, labels) in self.samples for k, _ in labels}
        return names - {"le", "quantile"}


@dataclass
class Snapshot:
    """Every family and sample of one scrape."""

    families: dict[str, Family]
    taken_at: float = field(default_factory=time.time)
    _by_sample: dict[str, str] | None = field(default=None, repr=False)

    @property
    def samples(self) -> dict[SeriesKey, float]:
        merged: dict[SeriesKey, float] = {}
        for family in self.families.values():
            merged.update(family.samples)
        return merged

    def series_count(self) -> int:
        return sum(len(f.samples) for f in self.families.values())

    def family_of(self, name: str) -> Family | None:
        """The family exposed as ``name`` or owning a sample called ``name``."""
        if name in self.families:
            return self.families[name]
        if self._by_sample is None:
            self._by_sample = {
                sample: fam.name for fam in self.families.values() for (sample, _) in fam.samples
            }
        owner = self._by_sample.get(name)
        return self.families.get(owner) if owner else None

    def value(self, name: str, labels: Mapping[str, str]) -> float | None:
        """The value of one exact series, or None (the ``get_sample_value`` equivalent)."""
        family = self.family_of(name)
        if family is None:
            return None
        return family.samples.get((name, labels_key(labels)))


def _exposed_name(metric: Metric) -> str:
    if metric.type == "counter":
        plain = any(s.name == metric.name for s in metric.samples)
        return metric.name if plain else f"{metric.name}_total"
    return metric.name


def from_families(metrics: Iterable[Metric]) -> Snapshot:
    metrics = list(metrics)
    parents = {m.name for m in metrics if m.type in _CREATED_PARENTS}
    families: dict[str, Family] = {}
    for metric in metrics:
        if metric.name.endswith("_created") and metric.name[: -len("_created")] in parents:
            continue  # the text format's separate *_created gauge family
        name = _exposed_name(metric)
        family = families.get(name)
        if family is None:
            family = families[name] = Family(name, metric.type, metric.documentation, metric.unit)
        for sample in metric.samples:
            if sample.name.endswith("_created") and metric.type in _CREATED_PARENTS:
                continue
            family.samples[(sample.name, labels_key(sample.labels))] = float(sample.value)
    return Snapshot(families)


def parse_text(text: str) -> Snapshot:
    """Parse a Prometheus text exposition (``text_string_to_metric_families``)."""
    return from_families(text_string_to_metric_families(text))


def from_registry(registry: CollectorRegistry) -> Snapshot:
    """Collect a registry directly: no text round trip."""
    return from_families(registry.collect())
