"""UrlSource over a real socket: kept-alive connections, a server that drops them, errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ai_suite_pytest.metrics import Metrics, ScrapeError
from ai_suite_pytest.metrics.sources import UrlSource

EXPOSITION = '# TYPE jobs_total counter\njobs_total{queue="a"} %d\n'


class Service:
    """A /metrics endpoint whose answers the test steers."""

    def __init__(self) -> None:
        self.value = 0
        self.status = 200
        self.drop_after_answer = False  # close without saying so (an idle timeout)
        self.connections: set[tuple[str, int]] = set()


@pytest.fixture
def service() -> Iterator[tuple[Service, str]]:
    state = Service()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive unless closed

        def do_GET(self) -> None:
            state.connections.add(self.client_address)
            body = (EXPOSITION % state.value).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = state.drop_after_answer

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_scrapes_reuse_one_connection(service: tuple[Service, str]) -> None:
    state, url = service
    metrics = Metrics()
    try:
        watch = metrics.watch(url)
        state.value = 3
        watch.assert_counter_delta("jobs_total", {"queue": "a"}, delta=3)
        watch.assert_counter_delta("jobs_total", delta=3)
    finally:
        assert metrics.close() == []
    assert len(state.connections) == 1


def test_a_connection_the_server_closed_is_reopened(service: tuple[Service, str]) -> None:
    state, url = service
    state.drop_after_answer = True
    source = UrlSource(url)
    try:
        for value in range(3):
            state.value = value
            assert source.scrape().value("jobs_total", {"queue": "a"}) == value
    finally:
        source.close()
    assert len(state.connections) == 3


def test_errors_name_the_url_and_the_answer(service: tuple[Service, str]) -> None:
    state, url = service
    state.status = 503
    source = UrlSource(url + "/custom")
    try:
        with pytest.raises(ScrapeError, match=r"scraping http://127\.0\.0\.1:\d+/custom answered "):
            source.scrape()
    finally:
        source.close()
    with pytest.raises(ValueError, match="expected an http"):
        UrlSource("http:///metrics")
