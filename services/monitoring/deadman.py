"""The dead man's switch: the Watchdog alert must keep arriving.

Prometheus fires Watchdog always; Alertmanager re-sends it every minute on its own route
(docker/alertmanager/alertmanager.yml). When it stops arriving, Prometheus, Alertmanager or
the path between them is broken, and no other alert could say so: the listener reports
the silence itself, once per outage, and again when the Watchdog comes back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

WATCHDOG_ALERT = "Watchdog"


class DeadMansSwitch:
    """Tracks the last Watchdog; ``check()`` says when it is overdue (thread-safe)."""

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if timeout <= 0:
            raise ValueError("the Watchdog timeout must be positive")
        self.timeout = timeout
        self._clock = clock
        # Counted from the start: a Watchdog that never arrives is the same outage.
        self._last = clock()
        self._seen = False
        self._reported = False
        self._lock = threading.Lock()

    def beat(self) -> str | None:
        """A Watchdog arrived; a message when it ends a reported silence."""
        with self._lock:
            self._last = self._clock()
            first, self._seen = not self._seen, True
            if self._reported:
                self._reported = False
                return "DEAD MAN'S SWITCH: the Watchdog arrives again; alerting works"
            if first:
                return "dead man's switch armed: the Watchdog arrived"
            return None

    def check(self) -> str | None:
        """A message the first time the Watchdog is overdue, None otherwise."""
        with self._lock:
            silent = self._clock() - self._last
            if self._reported or silent < self.timeout:
                return None
            self._reported = True
            since = "since this listener started" if not self._seen else "for"
            return (
                f"DEAD MAN'S SWITCH: no Watchdog from Alertmanager {since} {silent:.0f}s:"
                " Prometheus or Alertmanager is down, or cannot reach this listener;"
                " alerts are not being delivered"
            )
