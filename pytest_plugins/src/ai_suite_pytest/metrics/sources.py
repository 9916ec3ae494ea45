"""Where a snapshot comes from: a registry, an ASGI app in-process, or a URL.

Text sources return snapshots that keep the raw text and parse on demand
(``Snapshot.from_text``). Nothing here needs httpx: URLs are fetched with the
standard library's ``http.client`` over one kept-alive connection per source, and
an ASGI app is called directly (one GET: scope, receive, send).
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ai_suite_pytest.metrics.exposition import Snapshot, from_registry

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

SCRAPE_TIMEOUT_S = 10.0
# Identity encoding: prometheus_client gzips when asked, and un-gzipping costs more than
# the bytes save on a local socket.
_ACCEPT = {"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "identity"}


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
        from prometheus_client import generate_latest

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
        return Snapshot.from_text(self.text())

    def close(self) -> None:
        return None


def metrics_url(url: str) -> str:
    """A base URL gets ``/metrics`` appended; a URL with a path is used as is."""
    return url if urlsplit(url).path not in ("", "/") else url.rstrip("/") + "/metrics"


def _decode(body: bytes, content_type: str) -> str:
    charset = "utf-8"
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"')
    return body.decode(charset, errors="replace")


def _check(status: int, body: bytes, content_type: str, where: str) -> str:
    text = _decode(body, content_type)
    if status != 200:
        raise ScrapeError(f"scraping {where} answered {status}: {text[:200]!r}")
    return text


class UrlSource:
    """``GET /metrics`` over HTTP (a service of the running stack).

    One connection, kept alive between scrapes (a test scrapes two or more times,
    the background scraper every few milliseconds); a kept-alive connection the
    server has closed in between is reopened once. A lock serialises the test's
    scrapes and the background scraper's on the one connection.
    """

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
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s):// URL, got {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {**_ACCEPT, **(headers or {})}
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=_ssl_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _get(self) -> tuple[int, bytes, str]:
        reused = self._conn is not None
        conn = self._conn or self._connect()
        self._conn = conn
        try:
            conn.request("GET", self._target, headers=self._headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._conn = None
            if reused and not isinstance(exc, TimeoutError):
                # The server closed the idle connection: once more on a new one (not after
                # a timeout, which would only double the wait).
                return self._get()
            raise ScrapeError(f"cannot scrape {self.url}: {exc}") from exc
        if response.will_close:
            conn.close()
            self._conn = None
        return response.status, body, response.getheader("Content-Type", "")

    def text(self) -> str:
        with self._lock:
            status, body, content_type = self._get()
        return _check(status, body, content_type, self.url)

    def scrape(self) -> Snapshot:
        return Snapshot.from_text(self.text())

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


_SSL: list[ssl.SSLContext] = []


def _ssl_context() -> ssl.SSLContext:
    """One default context per process: loading the CA bundle costs ~25 ms each time."""
    if not _SSL:
        _SSL.append(ssl.create_default_context())
    return _SSL[0]


async def asgi_get(app: Any, path: str) -> tuple[int, bytes, str]:
    """One ``GET path`` on an ASGI 3 app: (status, body, content type).

    The request has no body; ``receive`` then reports a disconnect only once the
    response is complete, as a server would, so streaming apps are not cut short.
    """
    target, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"in-process")]
        + [(k.lower().encode(), v.encode()) for k, v in _ACCEPT.items()],
        "client": ("127.0.0.1", 0),
        "server": ("in-process", 80),
        "extensions": {},
    }
    status = 0
    content_type = ""
    chunks: list[bytes] = []
    finished = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, content_type
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for key, value in message.get("headers", []):
                if bytes(key).lower() == b"content-type":
                    content_type = bytes(value).decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                finished.set()

    await app(scope, receive, send)
    if not status:
        raise ScrapeError(f"the app returned without starting a response to GET {path}")
    return status, b"".join(chunks), content_type


class AsgiSource:
    """``GET /metrics`` on an ASGI app in-process (called directly, no HTTP client).

    The app runs on a private event loop in a helper thread, so the source works
    the same from sync tests, async tests and the background scraper.
    """

    def __init__(self, app: Any, *, path: str = "/metrics", service: str | None = None) -> None:
        state = getattr(app, "state", None)
        self.service = service or getattr(state, "service", None)
        self.name = f"app {self.service or type(app).__name__}{path}"
        self._app = app
        self._path = path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="metrics-asgi-scrape", daemon=True
        )
        self._thread.start()

    def text(self) -> str:
        future = asyncio.run_coroutine_threadsafe(asgi_get(self._app, self._path), self._loop)
        try:
            status, body, content_type = future.result(timeout=SCRAPE_TIMEOUT_S)
        except ScrapeError:
            raise
        except Exception as exc:  # the app raised: the test learns which app and why
            raise ScrapeError(f"cannot scrape {self.name}: {exc!r}") from exc
        return _check(status, body, content_type, self.name)

    def scrape(self) -> Snapshot:
        return Snapshot.from_text(self.text())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=SCRAPE_TIMEOUT_S)
        self._loop.close()


def source_for(target: Any, *, service: str | None = None) -> Source:
    """A source for a registry, an ``http(s)://`` URL, an ASGI app or a source."""
    from prometheus_client import CollectorRegistry

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
