"""Logs reach Loki in both modes: config.alloy tails `ai-suite up`'s log files (mounted by
compose.monitoring.yml) and Docker's output through one JSON pipeline; every LogQL query on
the dashboards selects labels and values the real formatter produces.

Static here: no Alloy binary installs on this machine (see tests/support/alloy_config.py);
the live check is the monitoring job of the GitHub workflow.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime
from pathlib import Path

import pytest

from services.cli.platform import platform_services
from services.core.context import request_id_var, route_var, user_var
from services.core.logging import JsonFormatter
from services.core.settings import CoreSettings
from services.monitoring.dashboards import load_dashboard, panel_queries
from tests.support import alloy_config, logql
from tests.support.monitoring import DOCKER, ROOT, load_yaml

ALLOY_FILE = DOCKER / "alloy" / "config.alloy"
DASHBOARDS = sorted((DOCKER / "grafana" / "dashboards").glob("*.json"))
MOUNT = "/var/log/ai-suite"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@pytest.fixture(scope="module")
def alloy() -> list[alloy_config.Block]:
    return alloy_config.parse(ALLOY_FILE.read_text())


def _services() -> set[str]:
    return {spec.name for spec in platform_services(CoreSettings())}


def _emitted_lines(service: str) -> list[dict]:
    """Real records through the real formatter: every level, with and without context."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service))
    logger = logging.getLogger(f"test.schema.{service}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    tokens = [request_id_var.set("rid-1"), user_var.set("alice"), route_var.set("/v1/models")]
    try:
        for level in LEVELS:
            logger.log(getattr(logging, level), "a %s line", level, extra={"status": 200})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed")
    finally:
        for var, token in zip((request_id_var, user_var, route_var), tokens, strict=True):
            var.reset(token)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture(scope="module")
def schema() -> logql.LogSchema:
    lines = [line for service in _services() for line in _emitted_lines(service)]
    fields = frozenset(key for line in lines for key in line)
    return logql.LogSchema(
        labels={
            # `service`: the compose service name or the log file's (both the service name).
            "service": frozenset(_services()),
            "level": frozenset(line["level"] for line in lines),
        },
        fields=fields,
    )


def test_the_data_dir_log_files_are_tailed_per_service(alloy: list[alloy_config.Block]) -> None:
    match = alloy_config.component(alloy, "local.file_match", "data_dir")
    targets = match.attrs["path_targets"]
    entries = [alloy_config.object_fields(obj) for obj in targets.strip("[] \n").split("},") if obj]
    assert {e["__path__"]: e["service"] for e in entries} == {
        f"{MOUNT}/{name}.log": name for name in _services()
    }
    source = alloy_config.component(alloy, "loki.source.file", "data_dir")
    assert alloy_config.references(source.attrs["targets"]) == ["local.file_match.data_dir.targets"]
    assert alloy_config.references(source.attrs["forward_to"]) == ["loki.process.json.receiver"]


def test_docker_output_goes_through_the_same_pipeline(alloy: list[alloy_config.Block]) -> None:
    docker = alloy_config.component(alloy, "loki.source.docker", "platform")
    assert alloy_config.references(docker.attrs["forward_to"]) == ["loki.process.json.receiver"]
    relabel = alloy_config.component(alloy, "discovery.relabel", "platform")
    keep = [r for r in relabel.children("rule") if "keep" in r.attrs.get("action", "")]
    assert set(alloy_config.strings(keep[0].attrs["regex"])[0].split("|")) == _services()


def test_the_json_stage_extracts_the_labels_and_time(
    alloy: list[alloy_config.Block], schema: logql.LogSchema
) -> None:
    process = alloy_config.component(alloy, "loki.process", "json")
    extracted = alloy_config.object_fields(process.children("stage.json")[0].attrs["expressions"])
    # Every extracted field exists in a real line; `level` becomes the label the queries use.
    assert set(extracted.values()) <= schema.fields
    assert "level" in alloy_config.object_fields(
        process.children("stage.labels")[0].attrs["values"]
    )
    assert extracted["level"] == "level"
    timestamp = process.children("stage.timestamp")[0]
    assert alloy_config.strings(timestamp.attrs["source"]) == ["time"]
    assert alloy_config.strings(timestamp.attrs["format"]) == ["RFC3339Nano"]
    for line in _emitted_lines("gateway"):
        assert datetime.fromisoformat(line["time"]).utcoffset() is not None  # RFC 3339: zoned
    keep = process.children("stage.label_keep")[0]
    assert set(alloy_config.strings(keep.attrs["values"])) == set(schema.labels)
    assert alloy_config.references(process.attrs["forward_to"]) == ["loki.write.local.receiver"]


def test_compose_mounts_the_data_dir_logs_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    volumes = load_yaml(DOCKER / "compose.monitoring.yml")["services"]["alloy"]["volumes"]
    mounts = [v for v in volumes if v.split(":")[-2] == MOUNT]
    assert len(mounts) == 1, volumes
    source, _, mode = mounts[0].rpartition(f":{MOUNT}:")
    assert mode == "ro"
    # The default is the data directory `ai-suite up` uses when run from the checkout
    # (CoreSettings' default, relative), seen from docker/ where compose resolves paths.
    default = source.removeprefix("${AI_SUITE_DATA_DIR:-").replace("}/logs", "/logs")
    assert source.startswith("${AI_SUITE_DATA_DIR:-")
    monkeypatch.chdir(ROOT)  # from the checkout, whichever directory pytest started in
    data_dir = CoreSettings().data_dir
    expected = data_dir if data_dir.is_absolute() else ROOT / data_dir
    assert (DOCKER / default).resolve() == (expected / "logs").resolve()


# The error-budget dashboard (generated from the slo:* recording rules) is about budgets
# over days; its logs are the per-service dashboards' log panels.
WITHOUT_LOGS = {"slo.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_logql_matches_the_log_schema(path: Path, schema: logql.LogSchema) -> None:
    queries = [q for q in panel_queries(load_dashboard(path)) if q.datasource_type == "loki"]
    if path.name in WITHOUT_LOGS:
        assert queries == [], f"{path.name} has log panels: take it out of WITHOUT_LOGS"
        return
    assert queries, f"{path.name}: every dashboard has a log panel"
    for query in queries:
        assert logql.problems(query.expr, schema) == [], query.where


# --- the checks can fail ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ('{level=~"WARN|ERROR"}', "'WARN' matches none"),
        ('{service="gateway-v2"}', "'gateway-v2' matches none"),
        ('{job="gateway"}', "'job' is not a stream label"),
        ('{service=~".*"}', "needs a label matcher"),
        ('{service="rag"} | request_id="x"', "without `| json`"),
        ('{service="rag"} | json | status_code="500"', "'status_code' is not in the JSON"),
    ],
)
def test_a_query_the_schema_cannot_answer_is_reported(
    expr: str, complaint: str, schema: logql.LogSchema
) -> None:
    assert any(complaint in p for p in logql.problems(expr, schema))


def test_fields_after_json_that_the_formatter_writes_pass(schema: logql.LogSchema) -> None:
    expr = '{service="gateway"} |= "x" | json | request_id="r" | route=~"/v1/.*" | status>=500'
    assert logql.problems(expr, schema) == []
    with pytest.raises(logql.LogQLUnsupported):
        logql.parse('sum(count_over_time({service="rag"}[5m]))')


def test_alloy_reader_rejects_broken_syntax() -> None:
    with pytest.raises(alloy_config.AlloySyntaxError):
        alloy_config.parse('loki.write "x" {\n endpoint {\n url = "u"\n}\n')
    with pytest.raises(alloy_config.AlloySyntaxError):
        alloy_config.parse('a "b" { v = ["x" }')
    with pytest.raises(alloy_config.AlloySyntaxError, match="set twice"):
        alloy_config.parse('a "b" {\n  v = 1\n  v = 2\n}\n')
    blocks = alloy_config.parse('// c { \na "b" {\n  s = "}{" /* } */\n  inner { k = 1 }\n}\n')
    assert blocks[0].attrs == {"s": '"}{"'}
    assert blocks[0].children("inner")[0].attrs == {"k": "1"}
