"""Issue 11 "Commands run in a box": an approved ``run_command`` is contained.

A real MCP server on a socket, real approvals, real bubblewrap and real processes: each
test approves a command that tries to get out and checks it got nothing and left nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from services.security.db import Database
from tests.support.box import needs_box
from tests.support.keys import make_key
from tests.support.live import free_port
from tests.support.processes import wait_until

CANARY = "canary-" + uuid.uuid4().hex


@dataclass
class McpServer:
    url: str
    data_dir: Path
    workspace: Path
    pid: int = 0

    def key(self, user: str, role: str) -> str:
        return make_key(self.data_dir / "security.db", user, role)


def call(server, key: str, argv: list[str], **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/tools/run_command/call",
        headers={"Authorization": f"Bearer {key}"},
        json={"arguments": {"argv": argv, **extra}},
        timeout=120,
    )


def run_approved(server, argv: list[str], **extra: Any) -> httpx.Response:
    """Request, approve (a second admin) and run ``argv``; the response of the run."""
    requester, approver = server.key("ann", "admin"), server.key("bob", "admin")
    pending = call(server, requester, argv, **extra)
    assert pending.status_code == 202, pending.text
    approval_id = pending.json()["approval_id"]
    approved = httpx.post(
        f"{server.url}/approvals/{approval_id}/approve",
        headers={"Authorization": f"Bearer {approver}"},
        timeout=30,
    )
    assert approved.status_code == 200, approved.text
    return httpx.post(
        f"{server.url}/tools/run_command/call",
        headers={"Authorization": f"Bearer {requester}"},
        json={"arguments": {"argv": argv, **extra}, "approval_id": approval_id},
        timeout=120,
    )


def python(server, code: str, **extra: Any) -> dict[str, Any]:
    response = run_approved(server, ["python3", "-c", code], **extra)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def survivors(marker: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with_marker = any(marker in part for part in process.info["cmdline"] or ())
        if with_marker and process.pid != os.getpid():
            found.append(process.pid)
    return found


def approvals_count(server) -> int:
    db = Database(server.data_dir / "security.db")
    try:
        return int(db.query_one("SELECT COUNT(*) FROM approval_requests")[0])
    finally:
        db.close()


@pytest.fixture
def mcp_process(tmp_path: Path) -> Iterator[McpServer]:
    """``python -m services.mcp`` as its own process, a canary secret in its environment.

    A process of its own because /proc/<pid>/environ shows the environment a process
    started with, not later os.environ changes: the canary must be there from the start.
    """
    data_dir, port = tmp_path / "data", free_port()
    server = McpServer(f"http://127.0.0.1:{port}", data_dir, data_dir / "workspace")
    server.key("ann", "admin")  # migrates the database before the service opens it
    env = {
        **os.environ,
        "AI_SUITE_DATA_DIR": str(data_dir),
        "MCP_PORT": str(port),
        "AI_SUITE_CANARY": CANARY,
        "OPENAI_API_KEY": CANARY,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.mcp"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: _healthy(server.url), timeout=60), "the MCP server never started"
        server.pid = process.pid
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@needs_box
def test_the_service_environment_is_out_of_reach(mcp_process) -> None:
    server = mcp_process
    # The canary really is where an unboxed child would find it.
    assert CANARY.encode() in Path(f"/proc/{server.pid}/environ").read_bytes()
    code = (
        "import os, json\n"
        "out = {'env': dict(os.environ)}\n"
        f"for pid in ('self', os.getppid(), 1, {server.pid}):\n"
        "    try:\n"
        "        out[str(pid)] = open(f'/proc/{pid}/environ', 'rb').read().decode()\n"
        "    except OSError as exc:\n"
        "        out[str(pid)] = repr(exc)\n"
        "out['pids'] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "out['fds'] = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))\n"
        "print(json.dumps(out))\n"
    )
    result = python(server, code)
    assert CANARY not in result["stdout"] + result["stderr"]
    seen = json.loads(result["stdout"])
    assert set(seen["env"]) <= {"PATH", "HOME", "LANG", "LC_CTYPE", "PWD"}
    # Its own PID namespace: bwrap's init (1) and the command (2); the service is not there.
    assert seen["pids"] == [1, 2]
    assert "No such file" in seen[str(server.pid)]
    # stdin, stdout, stderr and the descriptor listdir itself opened: no host directory
    # descriptor that openat(fd, "..") could climb out of.
    assert seen["fds"] == [0, 1, 2, 3]


@needs_box
@pytest.mark.parametrize("layout", ["default", "workspace_holds_the_data_dir"])
def test_the_security_database_cannot_be_opened(start_mcp, tmp_path: Path, layout) -> None:
    overrides = {"workspace_roots": [str(tmp_path)]} if layout != "default" else {}
    server = start_mcp(**overrides)
    db_path = server.data_dir / "security.db"
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    code = (
        "import os, json\n"
        "out = {}\n"
        f"for mode in ('rb', 'r+b', 'ab'):\n"
        "    try:\n"
        f"        open({str(db_path)!r}, mode).close()\n"
        "        out[mode] = 'opened'\n"
        "    except OSError as exc:\n"
        "        out[mode] = type(exc).__name__\n"
        "try:\n"
        f"    out['listing'] = os.listdir({str(server.data_dir)!r})\n"
        "except OSError as exc:\n"
        "    out['listing'] = type(exc).__name__\n"
        "print(json.dumps(out))\n"
    )
    seen = json.loads(python(server, code)["stdout"])
    assert {seen[mode] for mode in ("rb", "r+b", "ab")} <= {
        "FileNotFoundError",
        "PermissionError",
        "OSError",
    }, seen
    assert "security.db" not in seen["listing"]
    if layout == "default":
        assert seen["listing"] == ["workspace"]
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before


@needs_box
def test_a_setsid_sleeper_does_not_outlive_the_call(start_mcp) -> None:
    server = start_mcp()
    marker = "box-sleeper-" + uuid.uuid4().hex
    code = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(30)',"
        f" {marker!r}])\n"
        "    os._exit(0)\n"
        "print('forked')\n"
    )
    result = python(server, code)
    assert result["stdout"] == "forked\n"
    # The namespace's init is gone once the call returns, and the kernel reaps every
    # process of a PID namespace before its init has finished exiting.
    assert survivors(marker) == []


@needs_box
def test_a_timeout_kills_everything_within_a_second_or_so(start_mcp) -> None:
    server = start_mcp()
    marker = "box-timeout-" + uuid.uuid4().hex
    code = (
        "import os, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)',"
        f" {marker!r}], start_new_session=True)\n"
        "print('started', flush=True)\n"
        "time.sleep(30)\n"
    )
    requester, approver = server.key("ann", "admin"), server.key("bob", "admin")
    argv = ["python3", "-c", code, marker]
    pending = call(server, requester, argv, timeout=2)
    approval_id = pending.json()["approval_id"]
    httpx.post(
        f"{server.url}/approvals/{approval_id}/approve",
        headers={"Authorization": f"Bearer {approver}"},
        timeout=30,
    ).raise_for_status()
    started = time.monotonic()
    response = httpx.post(
        f"{server.url}/tools/run_command/call",
        headers={"Authorization": f"Bearer {requester}"},
        json={"arguments": {"argv": argv, "timeout": 2}, "approval_id": approval_id},
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "command_timeout"
    # A correctness bound, not a speed claim: before the box this took 20 s and more
    # (the setsid child held the pipes until its sleep ended).
    assert elapsed < 2 + 3, elapsed
    assert survivors(marker) == []


@needs_box
@pytest.mark.parametrize("network", [False, True])
def test_no_network_unless_configured(start_mcp, network: bool) -> None:
    server = start_mcp(command_network=network)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n"
            "    print('connected')\n"
            "except OSError as exc:\n"
            "    print(type(exc).__name__)\n"
        )
        result = python(server, code)
    assert (result["stdout"].strip() == "connected") is network, result


@needs_box
def test_resource_limits_stop_forks_memory_cpu_and_big_files(start_mcp) -> None:
    server = start_mcp(
        command_max_processes=16,
        command_max_memory_bytes=256 * 1024**2,
        command_max_file_bytes=1024**2,
        command_max_cpu_seconds=1,
    )
    # A bounded fork loop (a real bomb would hurt the other users of this machine).
    forks = python(
        server,
        "import os, time\n"
        "count = 0\n"
        "for _ in range(64):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(20); os._exit(0)\n"
        "        count += 1\n"
        "    except OSError:\n"
        "        break\n"
        "print(count)\n",
    )
    assert int(forks["stdout"]) < 16, forks
    memory = python(
        server,
        "try:\n    b = bytearray(512 * 1024 * 1024)\n    print('allocated')\n"
        "except MemoryError:\n    print('MemoryError')\n",
    )
    assert memory["stdout"].strip() == "MemoryError"
    big_file = python(
        server,
        "try:\n    open('big', 'wb').write(b'x' * (2 * 1024 * 1024))\n    print('written')\n"
        "except OSError as exc:\n    print(exc.errno)\n",
    )
    assert big_file["stdout"].strip() == "27", big_file  # EFBIG
    cpu = python(server, "while True: pass", timeout=20)
    assert cpu["exit_code"] != 0, cpu  # SIGXCPU, well before the 20 s timeout
    assert not cpu["timed_out"]


@needs_box
def test_the_workspace_stays_usable(start_mcp) -> None:
    server = start_mcp()
    (server.workspace / "notes.txt").write_text("hello\n")
    result = python(server, "open('out.txt', 'w').write(open('notes.txt').read().upper())")
    assert result["exit_code"] == 0, result
    assert (server.workspace / "out.txt").read_text() == "HELLO\n"
    git = run_approved(server, ["git", "init", "-q", "repo"])
    assert git.status_code == 200, git.text
    assert git.json()["result"]["exit_code"] == 0, git.text
    status = run_approved(server, ["git", "status", "--short"], cwd="repo")
    assert status.json()["result"]["exit_code"] == 0, status.text


@pytest.mark.parametrize(
    ("argv", "rule"),
    [
        (["git", "-c", "alias.x=!id", "x"], "option '-c' before the subcommand"),
        (["git", "clone", "--upload-pack=touch /tmp/pwned", "a", "b"], "'--upload-pack'"),
        (["git", "clone", "--upload-p", "id", "a", "b"], "'--upload-pack'"),
        (["git", "clone", "-u", "id", "a", "b"], "-u (--upload-pack)"),
        (["git", "clone", "-qu/bin/id", "a", "b"], "-u (--upload-pack)"),
        (["git", "clone", "ext::sh -c id", "b"], "transport ext::"),
        (["git", "fetch", "ext::sh -c id"], "transport ext::"),
        (["git", "x"], "subcommand 'x' is not allowed"),
        (["git", "config", "alias.x", "!id"], "subcommand 'config'"),
        (["git", "-C", "/", "status"], "option '-C'"),
        (["git", "--exec-path=/tmp", "status"], "option '--exec-path=/tmp'"),
        (["git", "grep", "-O", "id", "x"], "-O (--open-files-in-pager)"),
        (["git", "rebase", "-x", "id", "main"], "-x (--exec)"),
        (["git", "submodule", "foreach", "id"], "subcommand 'submodule'"),
    ],
)
def test_git_argument_rules_refuse_before_any_approval(start_mcp, argv, rule) -> None:
    server = start_mcp()
    response = call(server, server.key("ann", "admin"), argv)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "argument_not_allowed"
    assert rule in error["message"]
    assert approvals_count(server) == 0


def test_without_a_sandbox_run_command_is_refused_with_how_to_enable_it(start_mcp) -> None:
    server = start_mcp(bwrap_path="/nonexistent/bwrap")
    response = call(server, server.key("ann", "admin"), ["echo", "hi"])
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "sandbox_unavailable"
    assert "make system-deps" in error["message"]
    assert "apt-get install bubblewrap" in error["message"]
    assert approvals_count(server) == 0
    ready = httpx.get(f"{server.url}/ready", timeout=30).json()
    assert ready["status"] == "degraded"
    assert "make system-deps" in ready["checks"]["command_sandbox"]


@needs_box
def test_with_a_sandbox_ready_says_so(start_mcp) -> None:
    server = start_mcp()
    ready = httpx.get(f"{server.url}/ready", timeout=30).json()
    assert ready["checks"]["command_sandbox"] == "ok"
