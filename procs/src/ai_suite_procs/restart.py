"""When a child that exits is started again, and when not any more."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    """Restart on failure with exponential backoff, and give up on a crash loop.

    The n-th restart within ``window`` seconds waits ``backoff_initial * 2**(n-1)``
    seconds (at most ``backoff_max``); an exit after ``max_restarts`` restarts within
    ``window`` seconds is a crash loop and ends the restarts.
    """

    on_failure: bool = True
    max_restarts: int = 5
    window: float = 60.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def delay(self, recent_restarts: int) -> float:
        return float(min(self.backoff_max, self.backoff_initial * 2**recent_restarts))

    def gives_up(self, recent_restarts: int) -> bool:
        """After ``recent_restarts`` restarts within the window, is the next exit the end?"""
        return not self.on_failure or recent_restarts >= self.max_restarts


NEVER_RESTART = RestartPolicy(on_failure=False)
