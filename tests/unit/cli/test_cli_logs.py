"""``ai-suite logs`` over log files written by the services' real JSON formatter: merged by
time, filtered (time, level, request id), JSON or coloured text, rotated files, logfmt
lines of Prometheus, tracebacks, and the errors for an unknown service or no logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from services.cli.logs import parse_lines
from services.cli.main import cli
from services.core.context import request_id_var
from services.core.logging import JsonFormatter

Run = Callable[..., Result]
T0 = datetime.now(UTC) - timedelta(hours=2)


class ServiceLog:
    """A service's log file written through the real formatter, at chosen times."""

    def __init__(self, path: Path, service: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(JsonFormatter(service))
        self.logger = logging.Logger(f"test.{service}")
        self.logger.addHandler(self.handler)

    def at(self, minutes: float, level: int, message: str, request_id: str | None = None) -> None:
        record = self.logger.makeRecord(self.logger.name, level, __file__, 0, message, (), None)
        record.created = (T0 + timedelta(minutes=minutes)).timestamp()
        token = request_id_var.set(request_id)
        try:
            self.handler.handle(record)
        finally:
            request_id_var.reset(token)


@pytest.fixture
def logs_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


@pytest.fixture
def service_log(logs_dir: Path) -> Iterator[Callable[[str], ServiceLog]]:
    opened: list[ServiceLog] = []

    def make(service: str, name: str | None = None) -> ServiceLog:
        log = ServiceLog(logs_dir / (name or f"{service}.log"), service)
        opened.append(log)
        return log

    yield make
    for log in opened:
        log.handler.close()


def _messages(result: Result) -> list[tuple[str, str]]:
    assert result.exit_code == 0, result.output
    return [(e["service"], e["message"]) for e in map(json.loads, result.stdout.splitlines())]


def test_services_are_merged_by_time(run: Run, service_log) -> None:
    gateway, rag = service_log("gateway"), service_log("rag")
    gateway.at(1, logging.INFO, "g1")
    gateway.at(3, logging.INFO, "g3")
    rag.at(2, logging.INFO, "r2")
    rag.at(4, logging.INFO, "r4")
    assert _messages(run("logs", "--json")) == [
        ("gateway", "g1"),
        ("rag", "r2"),
        ("gateway", "g3"),
        ("rag", "r4"),
    ]
    assert _messages(run("logs", "rag", "--json")) == [("rag", "r2"), ("rag", "r4")]


def test_since_level_and_request_id_filter(run: Run, service_log) -> None:
    gateway = service_log("gateway")
    gateway.at(0, logging.WARNING, "two hours ago")
    gateway.at(100, logging.INFO, "twenty minutes ago", request_id="req-1")
    gateway.at(115, logging.WARNING, "five minutes ago", request_id="req-1")
    gateway.at(116, logging.ERROR, "four minutes ago", request_id="req-2")
    recent = _messages(run("logs", "--since", "30m", "--json"))
    assert [m for _, m in recent] == ["twenty minutes ago", "five minutes ago", "four minutes ago"]
    warnings = _messages(run("logs", "--since", "30m", "--level", "warning", "--json"))
    assert [m for _, m in warnings] == ["five minutes ago", "four minutes ago"]
    errors = _messages(run("logs", "--level", "ERROR", "--json"))
    assert [m for _, m in errors] == ["four minutes ago"]
    request = _messages(run("logs", "--request-id", "req-1", "--json"))
    assert [m for _, m in request] == ["twenty minutes ago", "five minutes ago"]
    last = _messages(run("logs", "-n", "1", "--json"))
    assert [m for _, m in last] == ["four minutes ago"]


def test_rotated_files_come_first(run: Run, service_log) -> None:
    service_log("gateway", "gateway.log.2").at(1, logging.INFO, "oldest")
    service_log("gateway", "gateway.log.1").at(2, logging.INFO, "older")
    service_log("gateway").at(3, logging.INFO, "current")
    assert [m for _, m in _messages(run("logs", "gateway", "--json"))] == [
        "oldest",
        "older",
        "current",
    ]


def test_lines_that_are_not_json(run: Run, service_log, logs_dir: Path) -> None:
    service_log("rag").at(1, logging.INFO, "started")
    with (logs_dir / "rag.log").open("a") as fh:
        fh.write("a warning printed by a library\n")
        fh.write("Traceback (most recent call last):\n  File 'x'\nValueError: bad\n")
    stamp = (T0 + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    (logs_dir / "prometheus.log").write_text(
        f'ts={stamp} caller=main.go:1 level=warn msg="Scrape failed"\n'
    )
    result = run("logs", "--json")
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["service"], e["level"], e["message"]) for e in entries] == [
        ("rag", "INFO", "started"),
        ("rag", "ERROR", "Traceback (most recent call last):"),
        ("prometheus", "WARNING", "Scrape failed"),
    ]
    assert entries[0]["continued"] == ["a warning printed by a library"]
    assert entries[1]["continued"] == ["  File 'x'", "ValueError: bad"]
    # A continuation shares its record's fate under a filter.
    errors = [json.loads(x) for x in run("logs", "--level", "error", "--json").stdout.splitlines()]
    assert [e["message"] for e in errors] == ["Traceback (most recent call last):"]


def test_text_is_coloured_only_on_a_terminal(service_log) -> None:
    service_log("gateway").at(1, logging.ERROR, "it broke", request_id="abc")
    plain = CliRunner().invoke(cli, ["logs"], catch_exceptions=False)
    assert "\x1b[" not in plain.stdout
    line = plain.stdout.strip()
    assert "gateway" in line and "ERROR" in line and "it broke" in line  # noqa: PT018
    assert "request_id=abc" in line
    coloured = CliRunner().invoke(cli, ["logs"], catch_exceptions=False, color=True)
    assert "\x1b[31m" in coloured.stdout  # ERROR in red


def test_an_unknown_service_is_a_usage_error(run: Run, service_log) -> None:
    service_log("gateway").at(1, logging.INFO, "x")
    result = run("logs", "gatewey")
    assert result.exit_code == 2
    assert "unknown service 'gatewey'" in result.stderr
    assert "gateway" in result.stderr


def test_no_logs_yet_says_where_it_looked_and_how_to_start(run: Run, logs_dir: Path) -> None:
    result = run("logs")
    assert result.exit_code == 1
    assert str(logs_dir) in result.stderr
    assert "ai-suite up" in result.stderr


def test_a_bad_since_names_the_option(run: Run, service_log) -> None:
    service_log("gateway").at(1, logging.INFO, "x")
    result = run("logs", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "Invalid value for '--since'" in result.stderr


@given(st.lists(st.text(max_size=60), max_size=8))
def test_any_lines_parse_into_records_without_losing_one(lines: list[str]) -> None:
    text_lines = [line for chunk in lines for line in chunk.splitlines()]
    records = list(parse_lines(text_lines, "gateway"))
    kept = [r.raw for r in records] + [line for r in records for line in r.more]
    assert sorted(kept) == sorted(line.rstrip("\r\n") for line in text_lines)


@given(st.text(max_size=80), st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR"]))
def test_a_formatted_record_parses_back(message: str, level: str) -> None:
    record = logging.makeLogRecord(
        {"name": "ai_suite.test", "levelname": level, "msg": message, "args": ()}
    )
    line = JsonFormatter("rag").format(record)
    (parsed,) = parse_lines([line], "rag")
    assert parsed.level == level
    assert parsed.service == "rag"
    assert parsed.message == json.loads(line)["message"]  # redaction included
