"""The files a running ``ai-suite up`` shares: status, requests, and the restarts metric."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from services.core.supervision import (
    STATUS_FILE,
    RestartsCollector,
    clear_status,
    read_status,
    send_request,
    take_requests,
    write_status,
)


def test_status_round_trip_is_private_and_names_this_process(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    write_status(directory, {"rag": {"state": "ready"}}, {"abc": "rag: restarting"})

    status = read_status(directory)

    assert status is not None
    assert status["supervisor_pid"] == os.getpid()
    assert status["services"] == {"rag": {"state": "ready"}}
    assert status["answers"] == {"abc": "rag: restarting"}
    assert stat.S_IMODE((directory / STATUS_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in directory.iterdir()] == [STATUS_FILE]  # no temporary left
    clear_status(directory)
    assert read_status(directory) is None
    clear_status(directory)  # twice is fine


def test_status_of_a_supervisor_that_is_gone_is_none(tmp_path: Path) -> None:
    write_status(tmp_path, {}, {})
    document = json.loads((tmp_path / STATUS_FILE).read_text())
    document["supervisor_started"] += 1  # the pid now belongs to another process
    (tmp_path / STATUS_FILE).write_text(json.dumps(document))
    assert read_status(tmp_path) is None
    (tmp_path / STATUS_FILE).write_text("{half a docu")
    assert read_status(tmp_path) is None


def test_requests_are_taken_once_in_order(tmp_path: Path) -> None:
    first = send_request(tmp_path, "restart", "rag")
    second = send_request(tmp_path, "restart", "mcp")
    (tmp_path / "control" / "junk.json").write_text("not json")

    taken = list(take_requests(tmp_path))

    assert [(r.id, r.action, r.service) for r in taken] == [
        (first, "restart", "rag"),
        (second, "restart", "mcp"),
    ]
    assert list(take_requests(tmp_path)) == []
    assert list((tmp_path / "control").iterdir()) == []  # the junk was dropped too
    assert list(take_requests(tmp_path / "nothing-here")) == []


def test_restarts_metric_from_the_status_file(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(RestartsCollector(tmp_path))
    assert (
        registry.get_sample_value(
            "ai_suite_service_restarts_total", {"service": "rag", "reason": "crash"}
        )
        is None
    )
    assert b"# TYPE ai_suite_service_restarts_total counter" in generate_latest(registry)

    write_status(
        tmp_path,
        {"rag": {"restarts_by_reason": {"crash": 2, "requested": 1}}},
        {},
    )

    def value(reason: str) -> float | None:
        return registry.get_sample_value(
            "ai_suite_service_restarts_total", {"service": "rag", "reason": reason}
        )

    assert (value("crash"), value("requested")) == (2, 1)
