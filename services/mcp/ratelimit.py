"""A per-user sliding one-minute window of tool calls, in memory."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._calls: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, user_id: int) -> float | None:
        """Record a call; None when allowed, else the seconds until the next slot frees."""
        now = self.clock()
        with self._lock:
            calls = self._calls.setdefault(user_id, deque())
            while calls and calls[0] <= now - WINDOW_SECONDS:
                calls.popleft()
            if len(calls) >= self.per_minute:
                return max(0.0, calls[0] + WINDOW_SECONDS - now)
            calls.append(now)
            return None
