"""One readiness probe at a time, with the standard library only.

Each probe answers "ready?" once: ``None`` when it passed, otherwise what it saw
("connection refused", "HTTP 503", "no answer within 1s"); the caller loops, with its
own deadline and its own check that the child is still alive. ``http.client`` never
reads HTTP(S)_PROXY, so probes of loopback services never go through a user's proxy.
"""

from __future__ import annotations

import http.client
import socket
import ssl

PROBE_TIMEOUT = 1.0  # one probe; the caller's timeout bounds the whole wait


def _probe_ssl_context() -> ssl.SSLContext:
    # A readiness probe asks "does it answer yet?" of a service started on a loopback
    # port, usually with a throw-away test certificate; whether that certificate is
    # trusted is for the tests themselves to check, not for the probe.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def describe_error(exc: Exception, timeout: float = PROBE_TIMEOUT) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP answer: {type(exc).__name__} {exc}".strip()
    return f"{type(exc).__name__}: {exc}"


def http_probe(
    host: str,
    port: int,
    path: str,
    *,
    scheme: str = "http",
    status: int = 200,
    timeout: float = PROBE_TIMEOUT,
) -> str | None:
    """GET ``path``: None when it answers ``status``, else what happened."""
    connection: http.client.HTTPConnection
    if scheme == "https":
        connection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=_probe_ssl_context()
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return describe_error(exc, timeout)
    finally:
        connection.close()
    if response.status == status:
        return None
    return f"HTTP {response.status}"


def tcp_probe(host: str, port: int, *, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Connect and close without sending a byte: None when something accepts."""
    # A Redis or PostgreSQL server sees an empty connection, not an HTTP request it would
    # log as an attack.
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return describe_error(exc, timeout)
