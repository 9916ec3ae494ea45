"""Per-backend circuit breaker.

A backend that keeps failing is skipped for ``reset_timeout`` seconds instead of making
every request wait for its error or timeout; the gateway falls through to the next
backend of the model. After the timeout one *trial* request is let through: success
closes the breaker, failure opens it again for another full timeout.

State machine::

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN --(reset_timeout elapsed, next allow_request)--> HALF_OPEN (one trial admitted)
    HALF_OPEN --(success)--> CLOSED
    HALF_OPEN --(failure)--> OPEN
    any state --(neutral answer)--> unchanged (a HALF_OPEN trial slot is freed)

Only upstream faults are failures; the caller decides what is one (see
``services.gateway.upstream.classify_status`` and docs/gateway.md "Failure handling").
An answer a client can provoke (400, 404, 413, 422, 429) is *neutral*: neither a failure,
or five bad requests would switch a backend off for everyone, nor a success, or bad
requests could keep a failing backend's breaker closed.

The breaker lives on one asyncio loop, so it needs no lock; but requests interleave at
every ``await``, so it must stay correct when results arrive in any order. Results of
requests admitted earlier (before the breaker opened) are still evidence about the
backend and are applied, with one exception: a late failure while OPEN does not push the
reopening time back, or a burst of slow failures could keep the backend shut for longer
than ``reset_timeout``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import IntEnum

logger = logging.getLogger(__name__)


class BreakerState(IntEnum):
    # Integer values so the state can be exported as a Prometheus gauge as-is.
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


StateListener = Callable[[str, BreakerState], None]


class CircuitBreaker:
    """Consecutive-failure circuit breaker for one backend.

    Callers ask :meth:`allow_request` before each attempt and report the outcome with
    exactly one of :meth:`record_success` or :meth:`record_failure`.
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: StateListener | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if reset_timeout < 0:
            raise ValueError(f"reset_timeout must be >= 0, got {reset_timeout}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        # Start time of the HALF_OPEN trial in flight, None when no trial is running.
        self._trial_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        """The current state. Reading it never causes a transition."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow_request(self) -> bool:
        """Whether the caller may send a request to the backend now."""
        if self._state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if self._state is BreakerState.OPEN:
            if now - self._opened_at < self.reset_timeout:
                return False
            self._transition(BreakerState.HALF_OPEN)
            self._trial_started_at = now
            return True
        # HALF_OPEN: one trial at a time. A trial whose outcome was never recorded (the
        # client went away and the task was cancelled) would otherwise block the backend
        # forever, so after reset_timeout it is presumed lost and a new trial is admitted.
        if self._trial_started_at is not None and now - self._trial_started_at < self.reset_timeout:
            return False
        self._trial_started_at = now
        return True

    def record_success(self) -> None:
        """The backend answered: close the breaker and forget earlier failures."""
        self._failures = 0
        self._trial_started_at = None
        self._transition(BreakerState.CLOSED)

    def record_neutral(self) -> None:
        """The backend answered, but the answer says nothing about its health (a client
        error, backpressure): the failure count stays as it is. A HALF_OPEN trial that
        ends this way frees its slot, so the next request is the trial."""
        if self._state is BreakerState.HALF_OPEN:
            self._trial_started_at = None

    def record_failure(self) -> None:
        """The backend failed (connection error, timeout, 5xx)."""
        self._failures += 1
        if self._state is BreakerState.OPEN:
            # A late result of a request admitted before opening; see the module
            # docstring for why it does not restart the timer.
            return
        # One failed trial is enough to reopen; when closed, only a run of failures is.
        trial_failed = self._state is BreakerState.HALF_OPEN
        if trial_failed or self._failures >= self.failure_threshold:
            self._open()

    def retry_after(self) -> float:
        """Seconds until a request may be admitted again; 0 if one would be now."""
        if self._state is BreakerState.CLOSED:
            return 0.0
        if self._state is BreakerState.OPEN:
            started = self._opened_at
        elif self._trial_started_at is None:
            return 0.0
        else:
            started = self._trial_started_at
        return max(0.0, started + self.reset_timeout - self._clock())

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._trial_started_at = None
        self._transition(BreakerState.OPEN)

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is new or self._on_change is None:
            return
        try:
            self._on_change(self.name, new)
        except Exception:
            # A broken listener (metrics) must not break request routing; the state
            # change itself has already happened.
            logger.exception("circuit breaker %s: state listener failed", self.name)

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(name={self.name!r}, state={self._state.name}, "
            f"failures={self._failures})"
        )
