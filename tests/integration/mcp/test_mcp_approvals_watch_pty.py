"""``ai-suite approvals watch`` driven through a pseudo-terminal, against a real gateway,
a real MCP server and real pending approvals in a real security database.

The watcher runs as a subprocess whose stdin/stdout are a pty, so ``click.getchar``
and the cbreak mode behave as on a user's terminal; the test types keys into it.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.mcp.app import create_app
from services.mcp.settings import McpSettings
from services.security.db import Database
from tests.support.live import serve_in_thread

AI_SUITE = str(Path(sys.executable).parent / "ai-suite")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A process on a pty: ``expect`` text, ``type`` keys; the transcript for failures."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.transcript = ""
        self.position = 0

    def expect(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Wait for ``pattern`` after what earlier expects consumed (a safety limit only,
        not a timed assertion: the text must appear at all)."""
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.transcript, self.position)
            if match:
                self.position = match.end()
                return match
            readable, _, _ = select.select([self.master], [], [], timeout)
            if not readable:
                raise AssertionError(f"{pattern!r} never came; transcript:\n{self.transcript}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the process closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"{pattern!r} never came; exited:\n{self.transcript}")
            self.transcript += ANSI.sub("", chunk.decode(errors="replace")).replace("\r\n", "\n")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        os.close(self.master)


@pytest.fixture
def platform(start_gateway, keys, tmp_path: Path) -> Iterator[dict[str, str]]:
    data_dir = tmp_path / "data"
    values = {
        "developer": keys.create("dev", "developer"),
        "admin": keys.create("bob", "admin"),
        "db": str(data_dir / "security.db"),
    }
    with serve_in_thread(create_app(McpSettings(data_dir=data_dir))) as mcp_url:
        values["gateway"] = start_gateway(mcp_url=mcp_url)
        yield values


def request_write(platform: dict[str, str], path: str, content: str) -> str:
    answer = httpx.post(
        f"{platform['gateway']}/v1/tools/write_file/call",
        headers={"Authorization": f"Bearer {platform['developer']}"},
        json={"arguments": {"path": path, "content": content}},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["approval_id"])


def watcher_env(platform: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "AI_SUITE_API_KEY": platform["admin"], "TERM": "dumb"}
    env.pop("COLUMNS", None)
    return env


def status_of(platform: dict[str, str], approval_id: str) -> tuple[str, str | None]:
    db = Database(platform["db"])
    try:
        row = db.query_one(
            "SELECT a.status, u.name FROM approval_requests a"
            " LEFT JOIN users u ON u.id = a.decided_by WHERE a.id = ?",
            (approval_id,),
        )
    finally:
        db.close()
    return row[0], row[1]


def test_watch_approves_rejects_and_skips_with_key_presses(platform: dict[str, str]) -> None:
    first = request_write(platform, "plan.txt", "line one\nline two")
    second = request_write(platform, "other.txt", "nope")
    terminal = Terminal(
        [AI_SUITE, "approvals", "watch", "--interval", "0.2", "--gateway-url", platform["gateway"]],
        watcher_env(platform),
    )
    try:
        # Oldest first, with who asked, its age, its expiry and every argument.
        terminal.expect(
            r"── write_file requested by dev, \d+m\d\ds ago, expires in (\d+h\d\dm|\d+m\d\ds)"
        )
        terminal.expect(f"id: +{first}")
        terminal.expect(r"path: plan\.txt\n")
        terminal.expect(r"\| line two")
        terminal.expect(r"\[a\]pprove  \[r\]eject  \[s\]kip  \[q\]uit\? ")
        terminal.type("a")
        terminal.expect(f"approved {first}; dev may now repeat the call once")

        terminal.expect(f"id: +{second}")
        terminal.expect(r"\[q\]uit\? ")
        terminal.type("r")
        terminal.expect(r"reason \(shown to the requester\)")
        terminal.type("not in this repository\r")
        terminal.expect(f"rejected {second}")
        terminal.expect(r"no pending requests; waiting… \(q quits\)")

        # A request made while the watcher waits shows up by itself.
        third = request_write(platform, "late.txt", "x")
        terminal.expect(f"id: +{third}")
        terminal.expect(r"\[q\]uit\? ")
        terminal.type("s")
        terminal.expect(f"skipped {third} \\(still pending\\)")
        terminal.expect(r"no pending requests; waiting… \(q quits\)")
        terminal.type("q")
        assert terminal.process.wait(timeout=30) == 0
    finally:
        terminal.close()

    assert status_of(platform, first) == ("approved", "bob")
    assert status_of(platform, second) == ("rejected", "bob")
    assert status_of(platform, third) == ("pending", None)
    # The approval the watcher gave is the real one: the requester's repeated call runs.
    ran = httpx.post(
        f"{platform['gateway']}/v1/tools/write_file/call",
        headers={"Authorization": f"Bearer {platform['developer']}"},
        json={
            "arguments": {"path": "plan.txt", "content": "line one\nline two"},
            "approval_id": first,
        },
        timeout=30,
    )
    assert ran.status_code == 200, ran.text
    db = Database(platform["db"])
    try:
        actions = {
            (row[0], row[1])
            for row in db.query(
                "SELECT action, user_name FROM audit_log WHERE resource IN (?, ?)",
                (first, second),
            )
        }
    finally:
        db.close()
    assert {("approval:approved", "bob"), ("approval:rejected", "bob")} <= actions


def test_a_decision_taken_elsewhere_is_reported_and_the_watch_goes_on(
    platform: dict[str, str],
) -> None:
    first = request_write(platform, "a.txt", "a")
    terminal = Terminal(
        [AI_SUITE, "approvals", "watch", "--interval", "0.2", "--gateway-url", platform["gateway"]],
        watcher_env(platform),
    )
    try:
        terminal.expect(r"\[q\]uit\? ")
        taken = httpx.post(
            f"{platform['gateway']}/v1/approvals/{first}/reject",
            headers={"Authorization": f"Bearer {platform['admin']}"},
            json={"reason": "decided elsewhere"},
            timeout=30,
        )
        assert taken.status_code == 200, taken.text
        terminal.type("a")
        terminal.expect(f"error: approval {first} is rejected, not pending")
        terminal.expect(r"no pending requests; waiting… \(q quits\)")
        terminal.type("q")
        assert terminal.process.wait(timeout=30) == 0
    finally:
        terminal.close()


def test_without_a_terminal_the_watch_only_prints(platform: dict[str, str]) -> None:
    first = request_write(platform, "a.txt", "a")
    process = subprocess.Popen(
        [AI_SUITE, "approvals", "watch", "--interval", "0.2", "--gateway-url", platform["gateway"]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=watcher_env(platform),
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("no pending requests"):
                break
        assert any(line.startswith(f"id:          {first}") for line in lines), lines
        assert not any("[a]pprove" in line for line in lines)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "stdin is not a terminal: printing new requests only" in stderr
    assert status_of(platform, first) == ("pending", None)
