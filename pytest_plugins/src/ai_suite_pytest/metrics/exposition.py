"""Parsed expositions: families and samples of one scrape, the same for text and registries.

Names follow what a PromQL user types: a counter family is called by its exposed
name (``http_requests_total``), a histogram by its base name. ``*_created``
timestamps that client libraries add are dropped: they change whenever a series
is born and only add noise to diffs.

Text is parsed by our own line parser, which gives the same families and samples
as ``prometheus_client.parser`` (a Hypothesis test renders random registries and
compares both), but can skip every line that does not belong to the families an
assertion names. A scrape keeps its raw text and parses on demand: a test that
asserts on one family of a 2,000-series exposition parses that family (and, with
a label subset, only the lines that can match it), not the whole exposition.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: prometheus_client costs ~15 ms at start-up
    from prometheus_client import CollectorRegistry

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
SeriesKey = tuple[str, Labels]  # (sample name, labels)

_CREATED_PARENTS = {"counter", "histogram", "summary", "gaugehistogram"}
# The types prometheus_client's Metric accepts (its parser raises on any other).
_METRIC_TYPES = {"counter", "gauge", "summary", "histogram", "gaugehistogram", "unknown"}
_METRIC_TYPES |= {"info", "stateset"}
# Sample names a family of each type owns; anything else starts a new (untyped) family,
# exactly as prometheus_client's text parser decides.
_ALLOWED_SUFFIXES = {
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}
# Suffixes a sample or exposed name can carry beyond its family's name in the text.
_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created", "_info", "_gcount", "_gsum")
_LABEL = re.compile(r'\s*,?\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
_LABELS_END = re.compile(r"\s*,?\s*}")
_UNESCAPE = re.compile(r'\\[\\n"]')
_HELP_UNESCAPE = re.compile(r"\\[\\n]")
# "# HELP name text" / "# TYPE name type", split on ASCII whitespace as prometheus_client does.
_WS = "[ \t\n\r\x0b\x0c]"
_COMMENT = re.compile(rf"#{_WS}+(HELP|TYPE){_WS}+([^ \t\n\r\x0b\x0c]+)(?:{_WS}+(.*))?$", re.S)
_UNESCAPED = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}


def labels_key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def format_series(name: str, labels: Labels) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{name}{{{inner}}}" if inner else name


def escape_label_value(value: str) -> str:
    """A label value as the text format writes it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def family_prefixes(name: str) -> tuple[str, ...]:
    """Text prefixes that every line of the family exposed as (or owning) ``name`` starts with.

    ``http_requests_total`` may be written as family ``http_requests`` (``# TYPE
    http_requests counter``), ``x_bucket`` belongs to ``x``: the name with one known
    suffix removed is a prefix too.
    """
    out = [name]
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            out.append(name[: -len(suffix)])
    return tuple(dict.fromkeys(out))


class Family:
    """One metric family as exposed."""

    __slots__ = ("help", "name", "partial", "samples", "type", "unit")

    def __init__(
        self,
        name: str,
        type: str,
        help: str,
        unit: str = "",
        samples: dict[SeriesKey, float] | None = None,
        *,
        partial: bool = False,
    ) -> None:
        self.name = name  # exposed name: counters with their _total suffix
        self.type = type
        self.help = help
        self.unit = unit
        self.samples: dict[SeriesKey, float] = samples if samples is not None else {}
        # True when only the lines matching a label subset were parsed (Snapshot.view)
        self.partial = partial

    def label_names(self) -> set[str]:
        """Label names of the family's series, without ``le``/``quantile``."""
        names = {k for (_sample, labels) in self.samples for k, _ in labels}
        return names - {"le", "quantile"}

    def __repr__(self) -> str:
        return f"Family({self.name!r}, {self.type!r}, {len(self.samples)} samples)"


class Snapshot:
    """The families and samples of one scrape.

    Built from families (a registry, or text parsed at once) or from raw text
    (``Snapshot.from_text``): then nothing is parsed until asked, and ``view()``
    parses only the families an assertion names.
    """

    def __init__(
        self,
        families: dict[str, Family] | None = None,
        taken_at: float | None = None,
        *,
        text: str | None = None,
    ) -> None:
        self.taken_at = time.time() if taken_at is None else taken_at
        self.text = text
        self._families = families
        self._by_sample: dict[str, str] | None = None
        self._loaded: dict[tuple[str, ...], dict[str, Family]] = {}
        self._type_map: dict[str, str] | None = None
        self._plain_text: bool | None = None
        self.origin: Snapshot = self  # a view points at the snapshot it was cut from

    @classmethod
    def from_text(cls, text: str, taken_at: float | None = None) -> Snapshot:
        return cls(taken_at=taken_at, text=text)

    @property
    def families(self) -> dict[str, Family]:
        if self._families is None:
            self._families = _build(_scan(self.text or ""))
        return self._families

    @property
    def samples(self) -> dict[SeriesKey, float]:
        merged: dict[SeriesKey, float] = {}
        for family in self.families.values():
            merged.update(family.samples)
        return merged

    def full(self) -> Snapshot:
        """The whole exposition (for failure messages, contracts, lint)."""
        return self.origin

    def series_count(self) -> int:
        return sum(len(f.samples) for f in self.families.values())

    def family_of(self, name: str) -> Family | None:
        """The family exposed as ``name`` or owning a sample called ``name``."""
        if self._families is None:
            return _owner(self._load(family_prefixes(name)), name)
        if name in self._families:
            return self._families[name]
        if self._by_sample is None:
            self._by_sample = {
                sample: fam.name for fam in self._families.values() for (sample, _) in fam.samples
            }
        owner = self._by_sample.get(name)
        return self._families.get(owner) if owner else None

    def value(self, name: str, labels: Mapping[str, str]) -> float | None:
        """The value of one exact series, or None (the ``get_sample_value`` equivalent)."""
        family = self.family_of(name)
        if family is None:
            return None
        return family.samples.get((name, labels_key(labels)))

    def _plain(self) -> bool:
        if self._plain_text is None:
            self._plain_text = _plain_text(self.text or "")
        return self._plain_text

    def _types(self) -> dict[str, str]:
        """Family name -> type, from the ``# TYPE`` lines (cached)."""
        if self._type_map is None:
            self._type_map = _type_lines(self.text or "")
        return self._type_map

    def _located(self, prefixes: tuple[str, ...], lines: Iterable[str]) -> list[_RawFamily]:
        """Raw families of ``prefixes`` (from the TYPE lines) holding only ``lines``.

        Each line goes to its family by its sample name and the declared types, so
        nothing else of the text is read. The result equals a filtered ``_scan`` for
        any exposition that keeps each family's lines together, as the format requires.
        """
        types = self._types()
        raw: dict[str, _RawFamily] = {
            name: (name, "", typ, []) for name, typ in types.items() if name.startswith(prefixes)
        }
        for line in lines:
            sample = _parse_sample(line)
            if not sample[0].startswith(prefixes):
                continue
            family = _family_for(sample[0], types)
            if family not in raw:
                raw[family] = (family, "", "untyped", [])
            raw[family][3].append(sample)
        return list(raw.values())

    def _load(self, prefixes: tuple[str, ...]) -> dict[str, Family]:
        """Every family whose name starts with one of ``prefixes``, complete (cached)."""
        if prefixes not in self._loaded:
            self._loaded[prefixes] = _build(_scan(self.text or "", prefixes))
        return self._loaded[prefixes]

    def view(self, names: Iterable[str], labels: Mapping[str, str] | None = None) -> Snapshot:
        """A snapshot of the families owning ``names``; with ``labels``, of only the lines
        that can carry them (such families are marked ``partial``).

        An eager snapshot returns itself: everything is already parsed.
        """
        if self._families is not None:
            return self
        prefixes = tuple(dict.fromkeys(p for n in names for p in family_prefixes(n)))
        text = self.text or ""
        if not labels:
            families = self._load(prefixes)
        else:
            needles = tuple(f'"{escape_label_value(str(v))}"' for v in labels.values())
            try:
                if not self._plain():
                    raise _Unusual
                raw = self._located(prefixes, _lines_with(text, needles, prefixes))
            except _Unusual:
                raw = _scan(text, prefixes, needles)
            families = _build(raw, partial=True)
        view = Snapshot(dict(families), self.taken_at)
        view.origin = self
        return view


_SAMPLE_NAME = re.compile(r"[^{\s]+")


def changed_views(before: Snapshot, after: Snapshot) -> tuple[Snapshot, Snapshot]:
    """``before`` and ``after`` cut down to the sample lines that differ between them.

    Two scrapes of the same process differ in a few lines; comparing the raw lines
    pairwise (same count) or as sets finds them, and only those lines are parsed (a changed
    series has its old line in ``before``'s view, a new one none). Snapshots that
    were not read from text are returned whole.
    """
    if before.text is None or after.text is None:
        return before, after
    if before.text == after.text:  # one C comparison
        return Snapshot({}, before.taken_at), _empty_view(after)
    old_lines, new_lines = before.text.split("\n"), after.text.split("\n")
    if len(old_lines) == len(new_lines):  # values changed, no series came or went
        pairs = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
        removed = {a.strip() for a, _ in pairs}
        added = {b.strip() for _, b in pairs}
    else:
        old, new = set(old_lines), set(new_lines)
        added = {line.strip() for line in new - old}
        removed = {line.strip() for line in old - new}
    names = set()
    for line in added:
        if line and line[0] != "#" and (match := _SAMPLE_NAME.match(line)):
            names.add(match.group(0))
    prefixes = tuple(dict.fromkeys(p for n in sorted(names) for p in family_prefixes(n)))
    views = []
    for snapshot, lines in ((before, removed), (after, added)):
        text = snapshot.text or ""
        families: dict[str, Family] = {}
        if names:
            try:
                if not snapshot._plain():
                    raise _Unusual
                samples = [line.strip() for line in lines if line and line[0] != "#"]
                raw = snapshot._located(prefixes, samples)
            except _Unusual:
                raw = _scan(text, prefixes, only=lines)
            families = _build(raw, partial=True)
        view = Snapshot(families, snapshot.taken_at)
        view.origin = snapshot
        views.append(view)
    return views[0], views[1]


def _empty_view(origin: Snapshot) -> Snapshot:
    view = Snapshot({}, origin.taken_at)
    view.origin = origin
    return view


def _owner(families: dict[str, Family], name: str) -> Family | None:
    if name in families:
        return families[name]
    for family in families.values():
        if any(sample == name for (sample, _) in family.samples):
            return family
    return None


# ---------------------------------------------------------------------------------------
# The text parser. _scan() walks the lines once and returns raw families; _build() turns
# them into Family objects the way prometheus_client's Metric and our from_families do.

_RawSample = tuple[str, Labels, float]
_RawFamily = tuple[str, str, str, list[_RawSample]]  # name, help, type, samples


def _allowed(name: str, typ: str) -> tuple[str, ...]:
    return tuple(name + s for s in _ALLOWED_SUFFIXES.get(typ, ("",)))


def _lines(text: str) -> list[str]:
    """The lines of ``text`` as prometheus_client reads them (split on \\n only, stripped)."""
    if "\r" in text or "\n " in text or "\n\t" in text or text[:1].isspace():
        return [line.strip() for line in text.split("\n")]
    return text.split("\n")  # nothing to strip: skip a Python call per line


def _scan(
    text: str,
    prefixes: tuple[str, ...] | None = None,
    needles: tuple[str, ...] = (),
    only: set[str] | None = None,
) -> list[_RawFamily]:
    """Raw families of ``text``; with ``prefixes``, only those whose name starts with one.

    Lines of other families are skipped after one ``startswith`` (a C call), which
    is what makes a filtered parse of a large exposition cheap. A sample line of a
    wanted family is parsed only if it contains every one of ``needles``, and, with
    ``only``, only if it is one of those lines.
    """
    wanted: tuple[str, ...] = prefixes if prefixes is not None else ("",)
    filtered = bool(needles) or only is not None
    needle = needles[0] if len(needles) == 1 else None
    families: list[_RawFamily] = []
    name = ""  # current family, as prometheus_client's parser tracks it
    doc = ""
    typ = "untyped"
    allowed: tuple[str, ...] = ()
    owned: tuple[str, ...] = ()  # how the lines of allowed samples start
    samples: list[_RawSample] = []
    keep = False  # the current family is wanted

    def close() -> None:
        if name and keep:
            families.append((name, doc, typ, samples))

    for line in _lines(text):
        if not line:
            continue
        if line[0] == "#":
            comment = _COMMENT.match(line.strip())
            if comment is None:
                continue  # a plain comment, or a HELP/TYPE without a name
            kind, candidate, rest = comment.groups()
            if candidate[:1] == '"':  # a quoted (UTF-8) name: prometheus_client's own code
                return _scan_slowly(text, prefixes)
            if candidate != name:
                close()
                name, doc, typ, samples = candidate, "", "untyped", []
                allowed = (candidate,)
                owned = _starts(allowed)
                keep = candidate.startswith(wanted)
            if kind == "HELP":
                doc = _HELP_UNESCAPE.sub(_unescape, rest) if rest else ""
            else:
                if not rest:
                    raise ValueError(f"TYPE line without a type: {line!r}")
                typ = rest
                allowed = _allowed(name, typ)
                owned = _starts(allowed)
            continue
        if not line.startswith(wanted):
            if keep:  # a foreign sample ends the current family (interleaved text)
                close()
                name, doc, typ, samples, allowed, owned, keep = "", "", "untyped", [], (), (), False
            continue
        if filtered and keep:
            if only is not None:
                fits = line in only
            elif needle is not None:
                fits = needle in line
            else:
                fits = all(map(line.__contains__, needles))
            if not fits and line.startswith(owned):
                continue  # one of ours that cannot match: skipped unparsed
        try:
            sample = _parse_sample(line)
        except _Unusual:
            return _scan_slowly(text, prefixes)
        if sample[0] in allowed:
            if keep:
                samples.append(sample)
            continue
        # Not the current family's: prometheus_client yields it as an untyped singleton.
        close()
        name, doc, typ, samples, allowed, owned, keep = "", "", "untyped", [], (), (), False
        families.append((sample[0], "", "untyped", [sample]))
    close()
    return families


_PADDED = re.compile(r"\n[ \t]")


def _plain_text(text: str) -> bool:
    """No padded line, so a line of family ``x`` starts with ``x`` (the located parse).

    Quoted (UTF-8) names make ``_parse_sample`` raise ``_Unusual`` instead, and the
    caller falls back to ``_scan``; CR line ends are whitespace to the value parser.
    """
    return not (text[:1].isspace() or _PADDED.search(text))


def _type_lines(text: str) -> dict[str, str]:
    """``# TYPE`` declarations; the first one of a name counts. A label value cannot hold a
    raw newline, so "\\n# TYPE " only occurs at the start of a line."""
    types: dict[str, str] = {}
    chunks = text.split("\n# TYPE ")
    if text.startswith("# TYPE "):
        chunks[0] = chunks[0][len("# TYPE ") :]
    else:
        chunks = chunks[1:]
    for chunk in chunks:
        head = chunk.split("\n", 1)[0].split()
        if len(head) >= 2:
            types.setdefault(head[0], head[1])
    return types


def _family_for(sample: str, types: dict[str, str]) -> str:
    """The family a sample called ``sample`` belongs to, by prometheus_client's rules."""
    typ = types.get(sample)
    if typ is not None and typ != "histogram":  # a histogram owns no sample of its own name
        return sample
    for suffix in ("_bucket", "_count", "_sum"):
        if sample.endswith(suffix):
            base = sample[: -len(suffix)]
            owner = types.get(base)
            if owner == "histogram" or (owner == "summary" and suffix != "_bucket"):
                return base
    return sample  # not declared: an untyped family of its own


def _lines_with(text: str, needles: tuple[str, ...], prefixes: tuple[str, ...]) -> list[str]:
    """Sample lines starting with one of ``prefixes`` and holding every needle.

    Found by searching for the first needle (C), not by reading every line.
    """
    first, rest = needles[0], needles[1:]
    found: list[str] = []
    pos = text.find(first)
    while pos != -1:
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        if end == -1:
            end = len(text)
        line = text[start:end]
        if line.startswith(prefixes) and all(n in line for n in rest):
            found.append(line)
        pos = text.find(first, end)
    return found


def _starts(allowed: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name + end for name in allowed for end in ("{", " ", "\t"))


class _Unusual(Exception):
    """A line our fast path does not handle (quoted names, ``{__name__=...}``)."""


def _unescape(match: re.Match[str]) -> str:
    return _UNESCAPED[match.group(0)]


def _value(tail: str, line: str) -> float:
    token = tail.split(None, 1)
    if not token or "_" in token[0]:
        raise ValueError(f"invalid sample line: {line!r}")
    return float(token[0])


def _parse_sample(line: str) -> _RawSample:
    brace = line.find("{")
    if brace == -1 or " # " in line[:brace]:  # no labels (a brace after " # " is an exemplar)
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise ValueError(f"invalid sample line: {line!r}")
        return parts[0], (), _value(parts[1], line)
    name = line[:brace].rstrip()
    if not name or name[0] == '"' or not name.isascii() or " " in name or "\t" in name:
        raise _Unusual
    rest = line[brace + 1 :]
    labels: list[tuple[str, str]] = []
    if "\\" not in rest:
        # Common case: no escapes, so every '"' opens or closes a value.
        parts = rest.split('"')
        i = 0
        while True:
            seg = parts[i]
            close = seg.find("}")
            if close != -1:
                if seg[:close].strip(" \t,"):
                    raise _Unusual
                tail = seg[close + 1 :]
                break
            key = seg.strip()
            if key[:1] == ",":
                key = key[1:].lstrip()
            if key[-1:] != "=" or i + 1 >= len(parts):
                raise _Unusual
            key = key[:-1].rstrip()
            if not (key.isidentifier() and key.isascii()):
                raise _Unusual
            labels.append((key, parts[i + 1]))
            i += 2
    else:
        pos = 0
        while True:
            match = _LABEL.match(rest, pos)
            if match is None:
                break
            value = match.group(2)
            if "\\" in value:
                value = _UNESCAPE.sub(_unescape, value)
            labels.append((match.group(1), value))
            pos = match.end()
        end = _LABELS_END.match(rest, pos)
        if end is None:
            raise _Unusual
        tail = rest[end.end() :]
    key_labels = tuple(sorted(labels))
    if len({k for k, _ in labels}) != len(labels):
        raise ValueError(f"duplicate label name: {line!r}")
    return name, key_labels, _value(tail, line)


def _scan_slowly(text: str, prefixes: tuple[str, ...] | None) -> list[_RawFamily]:
    """prometheus_client's parser, for syntax our line parser leaves to it (UTF-8 names)."""
    from prometheus_client.parser import text_string_to_metric_families

    families: list[_RawFamily] = []
    for metric in text_string_to_metric_families(text):
        typ = "untyped" if metric.type == "unknown" else metric.type
        # Metric stripped a counter's _total: put it back so _build() strips it once.
        name = f"{metric.name}_total" if metric.type == "counter" else metric.name
        if prefixes is not None and not name.startswith(prefixes):
            continue
        samples = [(s.name, labels_key(s.labels), float(s.value)) for s in metric.samples]
        families.append((name, metric.documentation, typ, samples))
    return families


def _build(raw: list[_RawFamily], *, partial: bool = False) -> dict[str, Family]:
    """Families as ``from_families`` builds them from prometheus_client's Metrics."""
    metrics: list[tuple[str, str, str, list[_RawSample]]] = []
    for name, doc, typ, samples in raw:
        if typ == "untyped":
            typ = "unknown"
        if typ not in _METRIC_TYPES:
            raise ValueError(f"invalid metric type {typ!r} for {name}")
        if typ == "counter":
            if name.endswith("_total"):
                name = name[: -len("_total")]
            else:
                samples = [(f"{s}_total", lb, v) for s, lb, v in samples]
        metrics.append((name, doc, typ, samples))
    parents = {name for name, _, typ, _ in metrics if typ in _CREATED_PARENTS}
    families: dict[str, Family] = {}
    for name, doc, typ, samples in metrics:
        if name.endswith("_created") and name[: -len("_created")] in parents:
            continue
        exposed = f"{name}_total" if typ == "counter" else name
        family = families.get(exposed)
        if family is None:
            family = families[exposed] = Family(exposed, typ, doc, "", partial=partial)
        drop_created = typ in _CREATED_PARENTS
        for sample, labels, value in samples:
            if drop_created and sample.endswith("_created"):
                continue
            family.samples[(sample, labels)] = value
    return families


# ---------------------------------------------------------------------------------------
# prometheus_client objects (imported lazily by the callers that have them)


def _exposed_name(metric: Any) -> str:
    if metric.type == "counter":
        plain = any(s.name == metric.name for s in metric.samples)
        return metric.name if plain else f"{metric.name}_total"
    return metric.name


def from_families(metrics: Iterable[Any]) -> Snapshot:
    """A snapshot of prometheus_client ``Metric`` objects."""
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
    """Parse a whole Prometheus text exposition at once."""
    return Snapshot(_build(_scan(text)))


def parse_text_prometheus_client(text: str) -> Snapshot:
    """The same through ``prometheus_client.parser`` (the reference; benchmarks, tests)."""
    from prometheus_client.parser import text_string_to_metric_families

    return from_families(text_string_to_metric_families(text))


def from_registry(registry: CollectorRegistry) -> Snapshot:
    """Collect a registry directly: no text round trip."""
    return from_families(registry.collect())
