"""The metrics plugin's text parser against prometheus_client's, and its filtered parse."""

from __future__ import annotations

import math

import pytest
from ai_suite_pytest.metrics.cardinality import new_series
from ai_suite_pytest.metrics.coverage import changed_series
from ai_suite_pytest.metrics.exposition import (
    Snapshot,
    family_prefixes,
    parse_text,
    parse_text_prometheus_client,
)
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: not n.endswith(("_total", "_count", "_sum", "_bucket", "_created", "_info"))
    and "__" not in n
)
LABEL_NAMES = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
# Any text, with the characters the format escapes made likely.
LABEL_VALUES = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('\\"\n{},= #'))
FLOATS = st.floats(min_value=0, max_value=1e15, allow_nan=False) | st.sampled_from(
    [math.inf, 0.5, 1e-9]
)


def _plain(snapshot: Snapshot) -> dict:
    """Families as comparable data (NaN as a string: NaN != NaN)."""
    return {
        name: (
            family.type,
            family.help,
            {k: ("nan" if math.isnan(v) else v) for k, v in family.samples.items()},
        )
        for name, family in snapshot.families.items()
    }


@st.composite
def registries(draw) -> CollectorRegistry:
    registry = CollectorRegistry()
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    for index, base in enumerate(names):
        labels = draw(st.lists(LABEL_NAMES, max_size=3, unique=True))
        helptext = draw(st.text(max_size=20))
        children = draw(st.lists(st.tuples(*[LABEL_VALUES] * len(labels), FLOATS), max_size=4))
        kind = ("counter", "gauge", "histogram", "summary")[index % 4]
        if kind == "counter":
            metric = Counter(f"{base}_total", helptext, labels, registry=registry)
        elif kind == "gauge":
            metric = Gauge(base, helptext, labels, registry=registry)
        elif kind == "histogram":
            metric = Histogram(base, helptext, labels, buckets=(0.5, 10), registry=registry)
        else:
            metric = Summary(base, helptext, labels, registry=registry)
        for *values, amount in children:
            child = metric.labels(*values) if labels else metric
            if kind == "gauge":
                child.set(amount)
            elif kind == "counter":
                child.inc(amount)
            else:
                child.observe(amount)
    return registry


@given(registries())
def test_the_parser_agrees_with_prometheus_client(registry: CollectorRegistry) -> None:
    text = generate_latest(registry).decode()
    assert _plain(parse_text(text)) == _plain(parse_text_prometheus_client(text))


@given(registries(), st.data())
def test_a_filtered_parse_gives_the_same_family(registry: CollectorRegistry, data) -> None:
    text = generate_latest(registry).decode()
    reference = parse_text_prometheus_client(text)
    name = data.draw(st.sampled_from(sorted(reference.families)))
    lazy = Snapshot.from_text(text)
    assert lazy.family_of(name) is not None
    assert _plain(lazy.view([name]))[name] == _plain(reference)[name]
    series = list(reference.families[name].samples)
    if series:
        sample, labels = data.draw(st.sampled_from(series))
        subset = dict(labels[:1])
        view = lazy.view([sample], subset)
        wanted = {
            k: v
            for k, v in reference.families[name].samples.items()
            if all(dict(k[1]).get(a) == b for a, b in subset.items())
        }
        got = {
            k: v
            for k, v in view.families[name].samples.items()
            if all(dict(k[1]).get(a) == b for a, b in subset.items())
        }
        assert got == wanted


HANDWRITTEN = """# A comment that is not HELP or TYPE
# HELP odd_total Escapes \\\\ and \\n in help.
# TYPE odd_total counter
odd_total{path="a\\\\b",quote="say \\"hi\\"",nl="x\\ny"} 3 1700000000000
odd_total{path="{},= #",quote="",nl=""} +Inf
# TYPE temp gauge
temp NaN
temp{core="1",} -2.5e-3
# TYPE latency histogram
latency_bucket{le="0.5"} 1
latency_bucket{le="+Inf"} 2 # {trace_id="abc"} 0.7
latency_count 2
latency_sum 1.2
latency_created 1.7e9
untyped_thing{a="b"} 7
  spaced_out   4
# TYPE plain counter
plain 5
# TYPE x_created gauge
x_created 12
"""


def test_handwritten_exposition_agrees_with_prometheus_client() -> None:
    mine = _plain(parse_text(HANDWRITTEN))
    assert mine == _plain(parse_text_prometheus_client(HANDWRITTEN))
    odd = (("nl", "x\ny"), ("path", "a\\b"), ("quote", 'say "hi"'))
    assert mine["odd_total"][2][("odd_total", odd)] == 3
    assert mine["plain_total"][2] == {("plain_total", ()): 5.0}
    assert set(mine) >= {"untyped_thing", "spaced_out", "x_created", "latency", "temp"}


def test_info_enum_and_created_series() -> None:
    registry = CollectorRegistry()
    Info("build", "Build.", registry=registry).info({"version": "1"})
    Enum("phase", "Phase.", states=["a", "b"], registry=registry)
    Counter("jobs_total", "Jobs.", registry=registry).inc()
    text = generate_latest(registry).decode()
    assert "jobs_created" in text
    assert _plain(parse_text(text)) == _plain(parse_text_prometheus_client(text))
    assert "jobs_created" not in parse_text(text).families


def test_a_utf8_quoted_name_falls_back_to_prometheus_client() -> None:
    text = '# TYPE "my.metric" gauge\n{"my.metric",a="b"} 1\n'
    assert _plain(parse_text(text)) == _plain(parse_text_prometheus_client(text))


@pytest.mark.parametrize(
    "line",
    ['x{a="1",a="2"} 1', "x 1_000", 'x{a="b"}', "# TYPE x", "# TYPE x meter\nx 1"],
)
def test_malformed_lines_are_refused(line: str) -> None:
    with pytest.raises(ValueError):
        parse_text(line + "\n")


def test_family_prefixes() -> None:
    assert family_prefixes("http_requests_total") == ("http_requests_total", "http_requests")
    assert family_prefixes("lat_bucket") == ("lat_bucket", "lat")
    assert family_prefixes("_total") == ("_total",)


def test_a_view_parses_only_the_named_families() -> None:
    lazy = Snapshot.from_text(HANDWRITTEN)
    view = lazy.view(["latency_count"])
    assert set(view.families) == {"latency"}
    assert view.origin is lazy
    assert lazy._families is None  # the whole text was never parsed
    assert lazy.family_of("nope") is None
    assert lazy.series_count() == parse_text(HANDWRITTEN).series_count()


@given(registries(), registries(), st.booleans())
def test_the_line_diff_finds_what_a_whole_diff_finds(first, second, same: bool) -> None:
    # Two unrelated expositions stress it more than two scrapes of one process would.
    before_text = generate_latest(first).decode()
    after_text = before_text if same else generate_latest(second).decode()
    eager = (parse_text(before_text), parse_text(after_text))
    lazy = (Snapshot.from_text(before_text), Snapshot.from_text(after_text))
    assert changed_series(*lazy) == changed_series(*eager)
    assert new_series(*lazy) == new_series(*eager)
