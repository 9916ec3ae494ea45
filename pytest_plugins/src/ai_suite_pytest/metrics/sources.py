"""Where a snapshot comes from: a registry, an ASGI app in-process, or a URL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Protocol

import httpx
from prometheus_client import CollectorRegistry, generate_latest

from ai_suite_pytest.metrics.exposition import Snapshot, from_registry, parse_text

SCRAPE_TIMEOUT_S = 10.0


class ScrapeError(RuntimeError):
    """The exposition could not be fetched."""


class Source(Protocol):
    name: str
    service: str | None

    def text(self) -> str: ...

    def scrape(self) -> Snapshot: ...

    def close(self) -> None: ...


class RegistrySource:
    """A ``CollectorRegistry`` in this process: collected directly, no HTTP."""

    def __init__(self, registry: CollectorRegistry, *, service: str | None = None) -> None:
        self.registry = registry
        self.service = service
        self.name = f"registry {id(registry):#x}"

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def scrape(self) -> Snapshot:
        return from_registry(self.registry)

    def close(self) -> None:
        return None


class TextSource:
    """Any callable returning exposition text (a file, a subprocess, a fake)."""

    def __init__(self, fetch: Callable[[], str], *, name: str = "text", service: str | None = None):
        self._fetch = fetch
        self.name = name
        self.service = service

    def text(self) -> str:
        return self._fetch()

    def scrape(self) -> Snapshot:
        return parse_text(self.text())

    def close(self) -> None:
        return None


def metrics_url(url: str) -> str:
    """A base URL gets ``/metrics`` appended; a URL with a path is used as is."""
    parsed = httpx.URL(url)
    return url if parsed.path not in ("", "/") else url.rstrip("/") + "/metrics"


def _check(response: httpx.Response, where: str) -> str:
    if response.status_code != 200:
        raise ScrapeError(
            f"scraping {where} answered {response.status_code}: {response.text[:200]!r}"
        )
    return response.text


class UrlSource:
    """``GET /metrics`` over HTTP (a service of the running stack)."""

    def __init__(
        self,
        url: str,
        *,
        service: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = SCRAPE_TIMEOUT_S,
    ) -> None:
        self.url = metrics_url(url)
        self.name = self.url
        self.service = service
        self._client = httpx.Client(timeout=timeout, headers=headers)

    def text(self) -> str:
        try:
            response = self._client.get(self.url)
        except httpx.HTTPError as exc:
            raise ScrapeError(f"cannot scrape {self.url}: {exc}") from exc
        return _check(response, self.url)

    def scrape(self) -> Snapshot:
        return parse_text(self.text())

    def close(self) -> None:
        self._client.close()


class AsgiSource:
    """``GET /metrics`` on an ASGI app in-process (httpx ``ASGITransport``).

    The app runs on a private event loop in a helper thread, so the source works
    the same from sync tests, async tests and the background scraper.
    """

    def __init__(self, app: Any, *, path: str = "/metrics", service: str | None = None) -> None:
        state = getattr(app, "state", None)
        self.service = service or getattr(state, "service", None)
        self.name = f"app {self.service or type(app).__name__}{path}"
        self._path = path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="metrics-asgi-scrape", daemon=True
        )
        self._thread.start()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://in-process"
        )

    def text(self) -> str:
        future = asyncio.run_coroutine_threadsafe(self._client.get(self._path), self._loop)
        try:
            response = future.result(timeout=SCRAPE_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise ScrapeError(f"cannot scrape {self.name}: {exc}") from exc
        return _check(response, self.name)

    def scrape(self) -> Snapshot:
        return parse_text(self.text())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._client.aclose(), self._loop).result(
            timeout=SCRAPE_TIMEOUT_S
        )
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=SCRAPE_TIMEOUT_S)
        self._loop.close()


def source_for(target: Any, *, service: str | None = None) -> Source:
    """A source for a registry, an ``http(s)://`` URL, an ASGI app or a source."""
    if isinstance(target, CollectorRegistry):
        return RegistrySource(target, service=service)
    if isinstance(target, str):
        if not target.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// URL, got {target!r}")
        return UrlSource(target, service=service)
    if all(hasattr(target, attr) for attr in ("text", "scrape", "close")):
        return target
    if callable(target):
        return AsgiSource(target, service=service)
    raise TypeError(
        f"cannot scrape {type(target).__name__}: pass a CollectorRegistry, a URL, "
        "an ASGI app or a Source"
    )
