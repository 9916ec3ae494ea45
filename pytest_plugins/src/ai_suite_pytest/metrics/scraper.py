"""Scraping in the background while a test runs: bounded in count and in time."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from ai_suite_pytest.metrics.exposition import Snapshot
from ai_suite_pytest.metrics.sources import Source


@dataclass(frozen=True)
class Scrape:
    elapsed: float  # seconds since the scraper started
    snapshot: Snapshot


class BackgroundScraper:
    """Scrape ``source`` every ``interval`` seconds on a daemon thread.

    Keeps at most ``max_scrapes`` (oldest dropped, and counted in ``dropped``) and
    stops by itself after ``max_seconds``, so a forgotten scraper cannot outlive
    its test or grow without bound. Errors are kept, not raised in the thread.
    """

    def __init__(
        self,
        source: Source,
        *,
        interval: float = 0.05,
        max_scrapes: int = 1000,
        max_seconds: float = 120.0,
    ) -> None:
        if interval <= 0 or max_scrapes <= 0 or max_seconds <= 0:
            raise ValueError("interval, max_scrapes and max_seconds must be positive")
        self.source = source
        self.interval = interval
        self.max_seconds = max_seconds
        self.scrapes: deque[Scrape] = deque(maxlen=max_scrapes)
        self.errors: list[str] = []
        self.dropped = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="metrics-scraper", daemon=True)

    def start(self) -> BackgroundScraper:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            elapsed = time.monotonic() - self._started
            if elapsed > self.max_seconds:
                return
            try:
                snapshot = self.source.scrape()
            except Exception as exc:  # a scrape failure is data for the test, not a crash
                with self._lock:
                    self.errors.append(f"{elapsed:.3f}s: {exc}")
                    del self.errors[:-100]
            else:
                with self._lock:
                    if len(self.scrapes) == self.scrapes.maxlen:
                        self.dropped += 1
                    self.scrapes.append(Scrape(elapsed, snapshot))
            self._stop.wait(self.interval)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def timeline(self) -> list[Scrape]:
        with self._lock:
            return list(self.scrapes)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
