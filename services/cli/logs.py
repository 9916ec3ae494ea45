"""``ai-suite logs``: the services' log files, merged by time, filtered, followed.

``ai-suite up`` sends each service's output to ``$AI_SUITE_DATA_DIR/logs/<service>.log``:
JSON lines from our services (``services/core/logging.py``), logfmt from Prometheus and
Alertmanager. Rotated files (``<service>.log.1`` ...) are read too. A line that is neither
(a traceback printed before logging was set up, a warning of a library) belongs to the
record before it, and shares its fate under the filters; a ``Traceback`` starts a record of
its own at level ERROR. Colours only on a terminal (click strips them otherwise).
"""

from __future__ import annotations

import heapq
import json
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import click

from services.core.settings import CoreSettings
from services.core.timespec import parse_instant

# What `ai-suite up` starts (services/cli/platform.py, monitoring/processes.py).
KNOWN_SERVICES = ("gateway", "rag", "mcp", "prometheus", "alertmanager")
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "ERR": "ERROR", "TRACE": "DEBUG"}
_LEVEL_COLOURS = {"DEBUG": "bright_black", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "red"}
_SERVICE_COLOURS = ("cyan", "magenta", "green", "blue", "bright_cyan", "bright_magenta")
_LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_EXTRA_SHOWN = ("request_id", "user", "status", "duration_ms")
_NOT_EXTRA = {"time", "level", "service", "logger", "message", "exception", *_EXTRA_SHOWN}


def log_dir(settings: CoreSettings) -> Path:
    return settings.data_dir / "logs"  # where `ai-suite up` writes (services/cli/main.py)


def _level(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return None
    upper = name.upper()
    return _ALIASES.get(upper, upper)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Record:
    time: datetime
    service: str
    level: str | None
    message: str
    fields: dict[str, Any]
    raw: str
    more: list[str] = field(default_factory=list)  # lines that belong to this record
    continuation: bool = False  # a line of a record printed before (when following)

    def as_json(self) -> dict[str, Any]:
        entry = dict(self.fields) if self.fields else {}
        entry.setdefault("time", self.time.isoformat(timespec="milliseconds"))
        entry.setdefault("service", self.service)
        entry.setdefault("level", self.level)
        entry.setdefault("message", self.message)
        if self.more:
            entry["continued"] = list(self.more)
        return entry


def parse_line(line: str, service: str, previous: Record | None) -> Record | None:
    """A new record, or None when ``line`` continues ``previous`` (added to its ``more``)."""
    text = line.rstrip("\r\n")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            entry = json.loads(stripped)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            return Record(
                time=_time(entry.get("time")) or (previous.time if previous else _EARLIEST),
                service=str(entry.get("service") or service),
                level=_level(entry.get("level")),
                message=str(entry.get("message", "")),
                fields=entry,
                raw=text,
            )
    pairs = dict(_LOGFMT.findall(text)) if "=" in text else {}
    stamp = _time(pairs.get("ts", "").strip('"')) or _time(pairs.get("time", "").strip('"'))
    if stamp is not None:  # Prometheus / Alertmanager (logfmt)
        message = pairs.get("msg", text).strip('"')
        return Record(stamp, service, _level(pairs.get("level")), message, {}, text)
    if previous is not None and not stripped.startswith("Traceback"):
        previous.more.append(text)
        return None
    level = "ERROR" if stripped.startswith("Traceback") else None
    return Record(previous.time if previous else _EARLIEST, service, level, text, {}, text)


def parse_lines(lines: Iterable[str], service: str) -> Iterator[Record]:
    """Records in file order; a record is yielded once the next one starts (or at the end)."""
    current: Record | None = None
    for line in lines:
        record = parse_line(line, service, current)
        if record is not None:
            if current is not None:
                yield current
            current = record
    if current is not None:
        yield current


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    level: str | None = None
    request_id: str | None = None

    def keep(self, record: Record) -> bool:
        if self.since is not None and record.time < self.since:
            return False
        if self.level is not None and LEVELS.get(record.level or "", 0) < LEVELS[self.level]:
            return False
        return self.request_id is None or record.fields.get("request_id") == self.request_id


def _colour(service: str) -> str:
    return _SERVICE_COLOURS[sum(service.encode()) % len(_SERVICE_COLOURS)]


def render(record: Record, width: int) -> str:
    if record.continuation:
        return record.message
    stamp = (
        record.time.isoformat(sep=" ", timespec="milliseconds")[:23]
        if record.time != _EARLIEST
        else "-" * 23
    )
    level = record.level or "-"
    parts = [
        click.style(stamp, dim=True),
        click.style(record.service.ljust(width), fg=_colour(record.service)),
        click.style(
            level.ljust(8), fg=_LEVEL_COLOURS.get(level), bold=level in ("ERROR", "CRITICAL")
        ),
        record.message,
    ]
    details = [
        f"{key}={record.fields[key]}" for key in _EXTRA_SHOWN if record.fields.get(key) is not None
    ]
    details += [f"{k}={v}" for k, v in record.fields.items() if k not in _NOT_EXTRA]
    if details:
        parts.append(click.style(" ".join(details), dim=True))
    lines = [" ".join(parts)]
    exception = record.fields.get("exception")
    if isinstance(exception, str):
        lines += [click.style(line, fg="red") for line in exception.splitlines()]
    lines += record.more
    return "\n".join(lines)


def _files(directory: Path, service: str) -> list[Path]:
    """Oldest first: ``<service>.log.N`` ... ``.log.1``, then ``<service>.log``."""
    rotated = []
    for path in directory.glob(f"{service}.log.*"):
        suffix = path.name.removeprefix(f"{service}.log.")
        if suffix.isdigit():
            rotated.append((int(suffix), path))
    current = directory / f"{service}.log"
    return [path for _, path in sorted(rotated, reverse=True)] + (
        [current] if current.exists() else []
    )


def _read_history(directory: Path, service: str, upto: int | None = None) -> Iterator[Record]:
    """Every record of the service's files; of the current file only its first ``upto``
    bytes when a follower goes on from there."""
    current = directory / f"{service}.log"
    for path in _files(directory, service):
        with path.open("rb") as fh:
            data = fh.read(upto) if upto is not None and path == current else fh.read()
        yield from parse_lines(data.decode("utf-8", "replace").splitlines(), service)


class Follower:
    """New complete lines of one ``<service>.log``, across rotation and truncation."""

    def __init__(self, path: Path, service: str, *, from_end: bool) -> None:
        self.path = path
        self.service = service
        self.handle: BinaryIO | None = None
        self.inode: int | None = None
        self.pending = b""
        self.previous: Record | None = None
        self._open(from_end)

    def _open(self, at_end: bool) -> None:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        self.handle = handle
        self.inode = os.fstat(handle.fileno()).st_ino
        if at_end:
            handle.seek(0, os.SEEK_END)

    def offset(self) -> int | None:
        return self.handle.tell() if self.handle is not None else None

    def _drain(self) -> list[bytes]:
        assert self.handle is not None  # nosec B101 - callers check
        self.pending += self.handle.read()
        *complete, self.pending = self.pending.split(b"\n")
        return complete

    def poll(self) -> list[Record]:
        lines: list[bytes] = []
        if self.handle is None:
            self._open(at_end=False)  # a file that appeared after we started: all of it
            if self.handle is None:
                return []
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            stat = None
        lines += self._drain()
        if stat is not None and stat.st_ino != self.inode:
            # Rotated: the old file's last lines are read above, the new one from its start.
            self.handle.close()
            self.pending = b""
            self._open(at_end=False)
            if self.handle is not None:
                lines += self._drain()
        elif stat is not None and stat.st_size < self.handle.tell():
            self.handle.seek(0)  # truncated in place
            self.pending = b""
            lines += self._drain()
        records: list[Record] = []
        for raw in lines:
            text = raw.decode("utf-8", "replace")
            previous = self.previous
            record = parse_line(text, self.service, previous)
            if record is not None:
                records.append(record)
                self.previous = record
            elif previous is not None and not any(r is previous for r in records):
                # It continues a record printed at an earlier poll: out on its own line,
                # with that record's time, level and request id so the filters agree.
                previous.more.pop()
                request = previous.fields.get("request_id")
                records.append(
                    Record(
                        previous.time,
                        self.service,
                        previous.level,
                        text,
                        {"request_id": request} if request else {},
                        text,
                        continuation=True,
                    )
                )
        return records

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _services(directory: Path, asked: tuple[str, ...]) -> list[str]:
    present = (
        sorted(p.name.removesuffix(".log") for p in directory.glob("*.log"))
        if directory.is_dir()
        else []
    )
    known = sorted({*KNOWN_SERVICES, *present})
    for name in asked:
        if name not in known:
            raise click.BadParameter(
                f"unknown service {name!r}; the platform's services are {', '.join(known)}",
                param_hint="'SERVICE'",
            )
    return list(dict.fromkeys(asked)) or [name for name in known if name in present]


def _no_logs(directory: Path, services: list[str] | tuple[str, ...]) -> str:
    which = f" of {', '.join(services)}" if services else ""
    return (
        f"no logs{which} yet in {directory}: start the platform with `ai-suite up`"
        " (it writes each service's output there), or set AI_SUITE_DATA_DIR to the data"
        " directory it runs with"
    )


@click.command()
@click.argument("services", nargs=-1)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@click.option("--since", default=None, help="From: a duration ago (10m, 1h) or ISO-8601.")
@click.option(
    "--level",
    type=click.Choice(list(LEVELS), case_sensitive=False),
    default=None,
    help="This level and above.",
)
@click.option("--request-id", default=None, help="Only the lines of this request.")
@click.option(
    "-n",
    "--tail",
    type=click.IntRange(min=0),
    default=None,
    help="Only the last N lines first (default: all; 10 with --follow).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--poll", type=click.FloatRange(min=0.01), default=0.2, hidden=True)
def logs(
    services: tuple[str, ...],
    follow: bool,
    since: str | None,
    level: str | None,
    request_id: str | None,
    tail: int | None,
    as_json: bool,
    poll: float,
) -> None:
    """Show the services' logs merged by time (all services when none is named)."""
    directory = log_dir(CoreSettings())
    try:
        start = parse_instant(since) if since is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from None
    filters = Filters(start, level.upper() if level else None, request_id)
    names = _services(directory, services)
    if not any(_files(directory, name) for name in names):
        if not follow:
            raise click.ClickException(_no_logs(directory, services))
        click.echo(_no_logs(directory, services) + "; waiting for them", err=True)
    if follow and tail is None and since is None:
        tail = 10
    width = max((len(name) for name in names or KNOWN_SERVICES), default=7)

    def emit(record: Record) -> None:
        click.echo(
            json.dumps(record.as_json(), ensure_ascii=False) if as_json else render(record, width)
        )

    # Followers open at each file's current end first; the history stops there, so no line
    # is printed twice or missed between the two.
    # Without names, every service: also those whose file appears while following.
    followed = list(services) or sorted({*KNOWN_SERVICES, *names})
    followers = (
        {name: Follower(directory / f"{name}.log", name, from_end=True) for name in followed}
        if follow
        else {}
    )
    # A file that does not exist yet when following is read whole by its follower: 0 here.
    histories = [
        _read_history(directory, name, (followers[name].offset() or 0) if follow else None)
        for name in names
    ]
    kept: Iterable[Record] = (
        r for r in heapq.merge(*histories, key=lambda r: r.time) if filters.keep(r)
    )
    if tail is not None:
        kept = deque(kept, maxlen=tail)
    for record in kept:
        emit(record)
    if not follow:
        return
    try:
        while True:
            batch = [r for f in followers.values() for r in f.poll() if filters.keep(r)]
            for record in sorted(batch, key=lambda r: r.time):
                emit(record)
            time.sleep(poll)
    except KeyboardInterrupt:
        pass
    finally:
        for follower in followers.values():
            follower.close()
