"""The readiness checks a stack file can ask for, with the standard library only.

Each check answers "ready?" once: ``None`` when it passed, otherwise what it saw
("connection refused", "HTTP 503", "exit 2: ...", "no line matched /x/ in 12 lines"),
which becomes part of the error when the service never gets ready. The loop around
the checks (timeouts, liveness) is the backend's (``backend.py``).

The http and tcp probes are ``ai_suite_procs.probes`` (``http.client`` and ``socket``, the
same probes ``ai-suite up`` uses) rather than an HTTP library: the plugins are installed
into other projects, and every dependency is theirs to carry.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ai_suite_procs.probes import http_probe, tcp_probe

from ai_suite_pytest.stack.spec import Readiness

COMMAND_TIMEOUT = 10.0
_TAIL_CHARS = 300


@dataclass(frozen=True)
class Target:
    """Where and how to check one service: filled in by the backend from its state."""

    host: str
    port: int | None
    scheme: str
    argv: list[str]  # the `command` check, placeholders filled in
    cwd: Path
    read_log: Callable[[], str]  # what the service wrote since it was last started


def _tail(text: str) -> str:
    text = " ".join(text.strip().split())
    return text if len(text) <= _TAIL_CHARS else "..." + text[-_TAIL_CHARS:]


class Probe:
    """One service's readiness check; :meth:`check` is called until it returns None."""

    def __init__(self, ready: Readiness, target: Target) -> None:
        self.ready = ready
        self.target = target
        self._pattern = re.compile(ready.log) if ready.kind == "log" else None

    def check(self) -> str | None:
        kind = self.ready.kind
        if kind == "http":
            return self._http()
        if kind == "tcp":
            return self._tcp()
        if kind == "command":
            return self._command()
        if kind == "log":
            return self._log()
        return None  # `ready: none`: ready once started

    def _http(self) -> str | None:
        assert self.target.port is not None  # refused by spec.py for portless services
        return http_probe(
            self.target.host,
            self.target.port,
            self.ready.http,
            scheme=self.target.scheme,
            status=self.ready.status,
        )

    def _tcp(self) -> str | None:
        assert self.target.port is not None
        return tcp_probe(self.target.host, self.target.port)

    def _command(self) -> str | None:
        try:
            result = subprocess.run(  # noqa: S603 - argv from the stack file, no shell
                self.target.argv,
                cwd=self.target.cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except FileNotFoundError:
            return f"command not found: {self.target.argv[0]}"
        except subprocess.TimeoutExpired:
            return f"still running after {COMMAND_TIMEOUT:g}s"
        if result.returncode == 0:
            return None
        output = (result.stderr or result.stdout).decode("utf-8", errors="replace")
        return f"exit {result.returncode}: {_tail(output) or '(no output)'}"

    def _log(self) -> str | None:
        assert self._pattern is not None
        lines = self.target.read_log().splitlines()
        if any(self._pattern.search(line) for line in lines):
            return None
        return f"no line matched /{self.ready.log}/ in {len(lines)} lines"
