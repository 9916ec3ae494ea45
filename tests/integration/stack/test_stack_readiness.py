"""Readiness kinds (http, tcp, command, log, none), ports (none, pinned, range), scheme and
host, each against real programs in a pytester project, and what a failure says."""

from __future__ import annotations

import shutil
import socket
import subprocess
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from tests.support import echo_service

pytestmark = pytest.mark.timeout(120)

# A TCP server that records how many bytes each connection sent: the tcp check must send
# none (an HTTP request makes Redis log "Possible SECURITY ATTACK").
TCP_SERVER = """
import pathlib, socket, sys
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        conn.settimeout(0.5)
        try:
            data = conn.recv(1024)
        except TimeoutError:
            data = b"(silent)"
        with pathlib.Path("bytes.log").open("a") as log:
            log.write(f"{len(data) if data != b'(silent)' else 0}\\n")
"""

# Prints its line after a moment, then stays up: a worker with no port.
WORKER = """
import sys, time
time.sleep(0.3)
print("worker started", flush=True)
time.sleep(300)
"""


def write_project(pytester: pytest.Pytester, stack: str, test: str) -> None:
    pytester.makefile(".py", service=echo_service.SOURCE, tcp_server=TCP_SERVER, worker=WORKER)
    pytester.makefile(".yaml", stack=textwrap.dedent(stack))
    pytester.makeini("[pytest]\nstack_file = stack.yaml\nstack_state_dir = .state\n")
    pytester.makepyfile(test_it=textwrap.dedent(test))


def test_every_readiness_kind_against_real_programs(pytester: pytest.Pytester) -> None:
    write_project(
        pytester,
        """
        name: kinds
        services:
          web:
            command: ["{python}", service.py, "{port}"]
            ready: {http: /anything, status: 200, timeout: 20}
          raw:
            command: ["{python}", tcp_server.py, "{port}"]
            ready: {tcp: true, timeout: 20}
          flagged:
            command: ["{python}", -c, "import pathlib, time; time.sleep(0.3);
              pathlib.Path('flag').touch(); time.sleep(300)"]
            port: none
            ready: {command: [test, -f, flag], timeout: 20}
          worker:
            command: ["{python}", worker.py]
            port: none
            ready: {log: "worker started", timeout: 20}
          sidecar:
            command: [sleep, "300"]
            port: none
            ready: none
        """,
        """
        import pathlib, pytest
        def test_all_ready(stack):
            assert stack.is_healthy("web") and stack.is_healthy("raw")
            assert stack.is_healthy("flagged") and stack.is_healthy("worker")
            assert stack.is_healthy("sidecar")
            assert pathlib.Path("flag").exists()  # ready only once the command passed
            assert "worker started" in stack.log_text("worker")
            # The tcp check connected without sending a byte.
            sent = pathlib.Path("bytes.log").read_text().split()
            assert sent and set(sent) == {"0"}
            with pytest.raises(ValueError, match="'worker' has `port: none`"):
                stack.url("worker")
        def test_a_log_check_after_a_restart_needs_a_new_line(stack):
            with stack.fault("worker", "kill"):
                assert not stack.is_healthy("worker")
            assert stack.is_healthy("worker")
            assert stack.log_text("worker").count("worker started") == 2
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("service", "seen"),
    [
        pytest.param(
            """
            command: [sleep, "300"]
            ready: {tcp: true, timeout: 1}
            """,
            "*tcp check (connect to the port) last saw connection refused (waited *s)*",
            id="tcp",
        ),
        pytest.param(
            """
            command: [sleep, "300"]
            port: none
            ready: {command: [sh, -c, "echo database is starting >&2; exit 2"], timeout: 1}
            """,
            "*command check (sh -c * exiting 0) last saw exit 2: database is starting*",
            id="command",
        ),
        pytest.param(
            """
            command: ["{python}", -c, "print('booting', flush=True); import time;
              time.sleep(300)"]
            port: none
            ready: {log: "worker started", timeout: 1}
            """,
            "*log check (a line matching /worker started/) last saw no line matched"
            " /worker started/ in 1 lines*",
            id="log",
        ),
        pytest.param(
            """
            command: ["{python}", service.py, "{port}"]
            ready: {http: /health, status: 204, timeout: 1}
            """,
            "*http check (GET /health expecting 204) last saw HTTP 200 (waited *s)*",
            id="http",
        ),
    ],
)
def test_a_readiness_failure_says_which_check_what_it_saw_and_how_long(
    pytester: pytest.Pytester, service: str, seen: str
) -> None:
    body = textwrap.indent(textwrap.dedent(service).strip(), " " * 4)
    write_project(
        pytester,
        f"name: failing\nservices:\n  svc:\n{body}\n",
        "def test_x(stack):\n    pass\n",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*svc was not ready within 1s: the " + seen.lstrip("*")])
    result.stdout.fnmatch_lines(["*last log lines:*"])


def free_block(size: int) -> int:
    """The first of ``size`` consecutive ports that are free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + size > 65535:
            continue
        with ExitStack() as stack:
            try:
                for port in range(base, base + size):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise AssertionError("no block of free ports found")


@contextmanager
def occupied(*ports: int) -> Iterator[None]:
    with ExitStack() as stack:
        for port in ports:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield


def test_pinned_port_and_the_first_free_port_of_a_range(pytester: pytest.Pytester) -> None:
    base = free_block(4)
    pinned = base + 3
    write_project(
        pytester,
        f"""
        name: ports
        services:
          pinned:
            command: ["{{python}}", service.py, "{{port}}"]
            port: {pinned}
          ranged:
            command: ["{{python}}", service.py, "{{port}}"]
            port: "{base}-{base + 2}"
          named:
            command: ["{{python}}", service.py, "{{port}}", localhost]
            host: localhost
            scheme: http
            ready: {{tcp: true}}
          client:
            command: ["{{python}}", -c, "import os, time;
              open('urls.txt', 'w').write(os.environ['URLS']); time.sleep(300)"]
            port: none
            ready: {{command: [test, -s, urls.txt]}}
            env: {{URLS: "{{url:pinned}} {{url:ranged}} {{url:named}} {{port:ranged}}"}}
        """,
        f"""
        import pathlib
        def test_ports(stack):
            assert stack.port("pinned") == {pinned}
            assert stack.port("ranged") == {base + 1}  # {base} is taken
            assert stack.url("named") == f"http://localhost:{{stack.port('named')}}"
            assert pathlib.Path("urls.txt").read_text().split() == [
                "http://127.0.0.1:{pinned}", "http://127.0.0.1:{base + 1}",
                stack.url("named"), "{base + 1}",
            ]
        """,
    )
    with occupied(base):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


HTTPS_SERVER = """
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("cert.pem", "key.pem")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_an_https_service_with_a_self_signed_certificate(pytester: pytest.Pytester) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "cert.pem"],
        cwd=pytester.path, check=True, capture_output=True,
    )  # fmt: skip
    pytester.makefile(".py", https_server=HTTPS_SERVER)
    write_project(
        pytester,
        """
        name: tls
        services:
          api:
            command: ["{python}", https_server.py, "{port}"]
            scheme: https
            ready: {http: /health, timeout: 20}
        """,
        """
        import ssl, urllib.request
        def test_url(stack):
            assert stack.url("api") == f"https://127.0.0.1:{stack.port('api')}"
            assert stack.is_healthy("api")
            context = ssl.create_default_context(cafile="cert.pem")
            context.check_hostname = False
            answer = urllib.request.urlopen(stack.url("api") + "/health", context=context)
            assert answer.status == 200
        """,
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_redis_with_a_tcp_check_sees_no_http_request(pytester: pytest.Pytester) -> None:
    write_project(
        pytester,
        """
        name: cache
        services:
          redis:
            command: [redis-server, --port, "{port}", --save, "", --appendonly, "no"]
            ready: {tcp: true, timeout: 20}
        """,
        """
        import socket
        def test_ping(stack):
            assert stack.is_healthy("redis")
            with socket.create_connection(("127.0.0.1", stack.port("redis")), timeout=5) as c:
                c.sendall(b"PING\\r\\n")
                assert c.recv(64) == b"+PONG\\r\\n"
            assert "Ready to accept connections" in stack.log_text("redis")
            # What an HTTP readiness probe made Redis log (the issue):
            assert "SECURITY ATTACK" not in stack.log_text("redis")
        """,
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("port", "busy", "message"),
    [
        ("{base}", (0,), "*services.svc.port: port {base} (pinned) is in use on 127.0.0.1*"),
        (
            '"{base}-{last}"',
            (0, 1, 2),
            "*services.svc.port: no free port in {base}-{last} on 127.0.0.1: all 3 are in use*",
        ),
    ],
    ids=["pinned", "range"],
)
def test_busy_ports_fail_the_start_saying_which(
    pytester: pytest.Pytester, port: str, busy: tuple[int, ...], message: str
) -> None:
    base = free_block(3)
    fill = {"base": base, "last": base + 2}
    write_project(
        pytester,
        "name: busy\nservices:\n  svc:\n"
        "    command: ['{python}', service.py, '{port}']\n"
        f"    port: {port.format(**fill)}\n",
        "def test_x(stack):\n    pass\n",
    )
    with occupied(*(base + i for i in busy)):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message.format(**fill)])
