"""A receiver for Alertmanager webhooks: prints each alert and resolution as it arrives.

``ai-suite alerts listen`` runs it in the foreground (the platform's default notification
channel); tests use :class:`AlertListener` as a library: start it on a free port, point
Alertmanager at :attr:`AlertListener.url`, then :meth:`AlertListener.wait_for` a
notification. Standard library only (``http.server`` in threads): it must work without an
event loop, inside any test, and stay tiny.

Alertmanager re-sends the whole group on every change and every ``repeat_interval``; an
alert already seen in the same state is marked ``(repeat)`` instead of looking new.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.monitoring.deadman import WATCHDOG_ALERT, DeadMansSwitch

log = logging.getLogger("ai_suite.monitoring.alerts")

ALERTS_PATH = "/alerts"
POLL_SECONDS = 0.05  # how quickly stop() returns; the server thread is idle otherwise
MAX_BODY_BYTES = 1_048_576  # a group of a few hundred alerts; anything bigger is not Alertmanager


class WebhookError(ValueError):
    """The body is not an Alertmanager webhook notification."""


@dataclass(frozen=True)
class Notification:
    """One alert of one webhook call."""

    received_at: datetime
    status: str  # firing | resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str
    receiver: str
    repeat: bool = False

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "?")

    @property
    def service(self) -> str:
        return self.labels.get("service", "-")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "-")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description", "")

    def line(self) -> str:
        """One readable line: time, FIRING/RESOLVED, alertname, service, severity, summary."""
        when = self.received_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        state = self.status.upper() + (" (repeat)" if self.repeat else "")
        return (
            f"{when} {state:<17} {self.alertname} service={self.service}"
            f" severity={self.severity}: {self.summary}"
        ).rstrip(": ")


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebhookError(f"{what} must be an object, got {type(value).__name__}")
    return {str(k): str(v) for k, v in value.items()}


def _fingerprint(labels: dict[str, str]) -> str:
    canonical = json.dumps(sorted(labels.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_webhook(payload: Any, *, received_at: datetime | None = None) -> list[Notification]:
    """The alerts of one Alertmanager webhook body (format version 4)."""
    if not isinstance(payload, dict):
        raise WebhookError("the body must be a JSON object (an Alertmanager webhook)")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise WebhookError("the body has no 'alerts' list: is this an Alertmanager webhook?")
    received_at = received_at or datetime.now(UTC)
    receiver = str(payload.get("receiver", ""))
    result = []
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise WebhookError(f"alerts[{index}] must be an object")
        status = alert.get("status", payload.get("status"))
        if status not in ("firing", "resolved"):
            raise WebhookError(f"alerts[{index}].status must be firing or resolved, got {status!r}")
        labels = _strings(alert.get("labels"), f"alerts[{index}].labels")
        result.append(
            Notification(
                received_at=received_at,
                status=status,
                labels=labels,
                annotations=_strings(alert.get("annotations"), f"alerts[{index}].annotations"),
                starts_at=str(alert.get("startsAt", "")),
                ends_at=str(alert.get("endsAt", "")),
                fingerprint=str(alert.get("fingerprint") or _fingerprint(labels)),
                receiver=receiver,
            )
        )
    return result


@dataclass
class _Inbox:
    """Received notifications, shared by the server threads and the reader."""

    on_notification: Callable[[Notification], None] | None
    switch: DeadMansSwitch | None = None
    on_watchdog: Callable[[str], None] | None = None
    items: list[Notification] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, notifications: list[Notification]) -> None:
        with self.changed:
            for item in notifications:
                repeat = self.states.get(item.fingerprint) == item.status
                self.states[item.fingerprint] = item.status
                stored = replace(item, repeat=repeat)
                self.items.append(stored)
                if item.alertname == WATCHDOG_ALERT and self.switch is not None:
                    # Every minute by design: feed the switch instead of printing a line.
                    if item.status == "firing":
                        self.report_watchdog(self.switch.beat())
                    continue
                if self.on_notification is not None:
                    self.on_notification(stored)
            self.changed.notify_all()

    def report_watchdog(self, message: str | None) -> None:
        if message is not None and self.on_watchdog is not None:
            self.on_watchdog(message)


def _handler(inbox: _Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ai-suite-alerts"

        def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path in ("/health", "/ready"):
                self._answer(HTTPStatus.OK, {"status": "ok"})
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"POST alerts to {ALERTS_PATH}"})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] not in (ALERTS_PATH, "/"):
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"POST alerts to {ALERTS_PATH}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "send a Content-Length"})
                return
            if length > MAX_BODY_BYTES:
                self._answer(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    {"error": f"body over {MAX_BODY_BYTES} bytes"},
                )
                return
            try:
                notifications = parse_webhook(json.loads(self.rfile.read(length) or b"null"))
            except (ValueError, UnicodeDecodeError) as exc:
                # json.JSONDecodeError and WebhookError are both ValueErrors.
                self._answer(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            inbox.add(notifications)
            self._answer(HTTPStatus.OK, {"received": len(notifications)})

        def log_message(self, format: str, *args: Any) -> None:
            # Alertmanager posts often; each alert is printed already, not each request.
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: Alertmanager flushing many groups at once (or
    # 20 parallel posts in a test) overflowed it and connections were refused or reset.
    request_queue_size = 128


class AlertListener:
    """An HTTP server for Alertmanager webhooks, in a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_notification: Callable[[Notification], None] | None = None,
        watchdog_timeout: float | None = None,
        on_watchdog: Callable[[str], None] | None = None,
    ) -> None:
        """``watchdog_timeout`` (seconds) arms the dead man's switch: ``on_watchdog`` gets a
        message when no Watchdog arrived for that long, and when it comes back."""
        switch = DeadMansSwitch(watchdog_timeout) if watchdog_timeout else None
        self._inbox = _Inbox(on_notification, switch, on_watchdog)
        self._server = _Server((host, port), _handler(self._inbox))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._stop_watch = threading.Event()
        self._watch: threading.Thread | None = None
        if switch is not None:
            self._watch = threading.Thread(
                target=self._watch_loop, args=(switch,), name="alerts-deadman", daemon=True
            )
            self._watch.start()

    def _watch_loop(self, switch: DeadMansSwitch) -> None:
        # A tenth of the timeout (at most a second): the report is late by at most that.
        step = min(1.0, switch.timeout / 10)
        while not self._stop_watch.wait(step):
            self._inbox.report_watchdog(switch.check())

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The webhook URL to put into Alertmanager's configuration."""
        return f"http://{self.host}:{self.port}{ALERTS_PATH}"

    def start(self) -> AlertListener:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(POLL_SECONDS,),
            name=f"alerts-listener-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop_watch.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> AlertListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`shutdown` (the CLI)."""
        try:
            self._server.serve_forever(POLL_SECONDS)
        finally:
            self._stop_watch.set()
            self._server.server_close()

    def shutdown(self) -> None:
        self._server.shutdown()

    @property
    def received(self) -> list[Notification]:
        """A copy of every notification so far, oldest first."""
        with self._inbox.changed:
            return list(self._inbox.items)

    def __iter__(self) -> Iterator[Notification]:
        return iter(self.received)

    def wait_for(
        self,
        *,
        alertname: str | None = None,
        status: str | None = None,
        timeout: float = 120.0,
        **labels: str,
    ) -> Notification:
        """The first notification (received so far or later) matching all criteria.

        Raises TimeoutError listing what did arrive, so a failing test says why.
        """

        def match(item: Notification) -> bool:
            return (
                (alertname is None or item.alertname == alertname)
                and (status is None or item.status == status)
                and all(item.labels.get(k) == v for k, v in labels.items())
            )

        deadline = time.monotonic() + timeout
        with self._inbox.changed:
            while True:
                found = next((item for item in self._inbox.items if match(item)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n  ".join(i.line() for i in self._inbox.items) or "(nothing)"
                    raise TimeoutError(
                        f"no notification alertname={alertname} status={status} {labels}"
                        f" within {timeout:.0f}s; received:\n  {seen}"
                    )
                self._inbox.changed.wait(left)
