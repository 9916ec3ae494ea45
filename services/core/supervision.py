"""What a running ``ai-suite up`` shares with other processes, through its data directory.

The supervisor is not an HTTP service, so its state travels as files under
``<data_dir>/run`` (0700, like the whole data directory):

- ``supervisor.json``: every service's state, restarts and uptime, rewritten
  atomically on each change. ``ai-suite status`` reads it, and the gateway's
  ``/metrics`` turns its restart counts into ``ai_suite_service_restarts_total``
  (:class:`RestartsCollector`), so Prometheus sees them without another scrape target.
  It names the supervisor's pid and start time: a file left by a killed ``up`` is
  recognised as stale and ignored.
- ``control/<id>.json``: a request (``ai-suite restart SERVICE``) the supervisor loop
  picks up, executes and answers in ``supervisor.json`` under ``answers``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from services.core.files import private_dir, private_file

STATUS_FILE = "supervisor.json"
CONTROL_DIR = "control"
# Answers kept in the status file for requesters that poll for theirs.
ANSWERS_KEPT = 20


def run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def write_status(
    directory: Path, services: dict[str, dict[str, Any]], answers: dict[str, str]
) -> None:
    """Replace ``supervisor.json`` atomically (readers never see half a file)."""
    private_dir(directory)
    pid = os.getpid()
    document = {
        "supervisor_pid": pid,
        "supervisor_started": _create_time(pid),
        "written_at": time.time(),
        "services": services,
        "answers": answers,
    }
    temporary = directory / f".{STATUS_FILE}.{pid}.tmp"
    private_file(temporary).write_text(json.dumps(document, indent=1), encoding="utf-8")
    temporary.replace(directory / STATUS_FILE)


def read_status(directory: Path) -> dict[str, Any] | None:
    """The running supervisor's status, or None when no ``ai-suite up`` runs for it."""
    try:
        document = json.loads((directory / STATUS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    pid = document.get("supervisor_pid")
    if not isinstance(pid, int) or _create_time(pid) != document.get("supervisor_started"):
        return None  # left behind by an `ai-suite up` that is gone (kill -9, reboot)
    return document


def clear_status(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (directory / STATUS_FILE).unlink()


# --- requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    id: str
    action: str
    service: str


def send_request(directory: Path, action: str, service: str) -> str:
    """Leave a request for the supervisor loop; returns its id (look for the answer)."""
    control = private_dir(directory / CONTROL_DIR)
    # Named by time first, so that requests are handled in the order they were made.
    request_id = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
    temporary = control / f".{request_id}.tmp"
    private_file(temporary).write_text(
        json.dumps({"action": action, "service": service}), encoding="utf-8"
    )
    # The rename makes it visible whole: the loop never reads a half-written request.
    temporary.replace(control / f"{request_id}.json")
    return request_id


def take_requests(directory: Path) -> Iterator[Request]:
    """Pending requests, oldest first, each removed as it is handed out."""
    for path in sorted((directory / CONTROL_DIR).glob("*.json")):
        try:
            text = path.read_text(encoding="utf-8")
            path.unlink()
        except FileNotFoundError:
            continue  # taken meanwhile
        try:
            body = json.loads(text)
        except ValueError:
            continue  # not a request of ours (they are JSON): dropped
        if isinstance(body, dict):
            yield Request(path.stem, str(body.get("action", "")), str(body.get("service", "")))


# --- metrics --------------------------------------------------------------------------


class RestartsCollector(Collector):
    """``ai_suite_service_restarts_total{service,reason}`` from the running supervisor.

    Counts since that ``ai-suite up`` started (a new ``up`` starts at zero: a counter
    reset, which ``increase()`` handles). No supervisor (containers): no samples.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def describe(self) -> list[CounterMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = self._family()
        status = read_status(self.directory)
        for name, service in ((status or {}).get("services") or {}).items():
            for reason, count in (service.get("restarts_by_reason") or {}).items():
                family.add_metric([name, reason], count)
        yield family

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "ai_suite_service_restarts",
            "Restarts of a platform service by ai-suite up (reason: crash or requested)",
            labels=["service", "reason"],
        )
