"""Issue 11: an approval shows exactly what will run — in the API, the CLI and the audit log.

The API is the in-process MCP app; its JSON answers are handed to ``ai-suite approvals``
through respx, so the CLI prints what the server really returns.
"""

from __future__ import annotations

import hashlib
import json

import httpx
import respx
from click.testing import CliRunner

from services.cli.approvals import approvals
from tests.support.box import needs_box

BASE = "http://gw.test"
ARGV = ["git", "log", "--grep=!id x", "x"]
SK = "sk-abcdef1234567890XYZ"
AIS = "ais_" + "Q" * 40


def cli(*args: str, columns: int = 200):
    return CliRunner().invoke(
        approvals,
        [*args, "--gateway-url", BASE],
        env={"AI_SUITE_API_KEY": "ais_k", "COLUMNS": str(columns)},
    )


def approval_rows(env, approval_id: str) -> dict[str, dict]:
    rows = env.db.query(
        "SELECT action, details FROM audit_log WHERE resource = ? ORDER BY id", (approval_id,)
    )
    return {row["action"]: json.loads(row["details"]) for row in rows}


def all_audit_text(env) -> str:
    return "\n".join(row["details"] for row in env.db.query("SELECT details FROM audit_log"))


async def request(env, tool: str, arguments: dict) -> str:
    response = await env.call(tool, "a", "admin", arguments=arguments)
    assert response.status_code == 202, response.text
    return response.json()["approval_id"]


async def detail(env, approval_id: str) -> dict:
    response = await env.client.get(f"/approvals/{approval_id}", headers=env.headers("b", "admin"))
    assert response.status_code == 200, response.text
    return response.json()


@needs_box
async def test_run_command_approval_shows_the_full_argv_everywhere(env) -> None:
    approval_id = await request(env, "run_command", {"argv": ARGV})
    item = await detail(env, approval_id)
    assert item["args_summary"]["argv"] == ARGV
    assert item["args_summary"]["cwd"] == "."
    listed = await env.client.get("/approvals", headers=env.headers("b", "admin"))
    assert listed.json()["data"][0]["args_summary"]["argv"] == ARGV

    approved = await env.client.post(
        f"/approvals/{approval_id}/approve", json={}, headers=env.headers("b", "admin")
    )
    assert approved.status_code == 200
    rows = approval_rows(env, approval_id)
    for action in ("approval:requested", "approval:approved"):
        assert rows[action]["arguments"]["argv"] == ARGV
        assert rows[action]["args_hash"] == item["args_hash"]
    tool_rows = env.db.query("SELECT details FROM audit_log WHERE action = 'tool:run_command'")
    assert json.loads(tool_rows[0]["details"])["arguments"]["argv"] == ARGV

    with respx.mock:
        respx.get(f"{BASE}/v1/approvals/{approval_id}").mock(
            return_value=httpx.Response(200, json=(await detail(env, approval_id)))
        )
        respx.get(f"{BASE}/v1/approvals").mock(return_value=httpx.Response(200, json=listed.json()))
        shown = cli("show", approval_id)
        listing = cli("list", "--all")
    assert shown.exit_code == 0, shown.output
    assert "command:     git log '--grep=!id x' x" in shown.stdout
    for index, arg in enumerate(["git", "log", "'--grep=!id x'", "x"]):
        assert f"  [{index}] {arg}\n" in shown.stdout
    assert f"args sha256: {item['args_hash']}" in shown.stdout
    assert "status:      approved" in shown.stdout
    assert listing.exit_code == 0, listing.output
    assert "git log '--grep=!id x' x" in listing.stdout
    assert "argc" not in listing.stdout


async def test_write_file_approval_shows_path_size_hash_and_a_marked_preview(env) -> None:
    content = "line one\n" + "é" * 300
    approval_id = await request(env, "write_file", {"path": "notes/a.txt", "content": content})
    arguments = (await detail(env, approval_id))["args_summary"]
    data = content.encode()
    assert arguments["path"] == "notes/a.txt"
    assert arguments["bytes"] == len(data)
    assert arguments["sha256"] == hashlib.sha256(data).hexdigest()
    assert arguments["preview"] == content[:200]
    assert arguments["preview_truncated"] is True
    assert approval_rows(env, approval_id)["approval:requested"]["arguments"] == arguments

    with respx.mock:
        respx.get(f"{BASE}/v1/approvals/{approval_id}").mock(
            return_value=httpx.Response(200, json=(await detail(env, approval_id)))
        )
        shown = cli("show", approval_id)
    assert shown.exit_code == 0, shown.output
    assert "path: notes/a.txt" in shown.stdout
    assert f"bytes: {len(data)}" in shown.stdout
    assert f"sha256: {hashlib.sha256(data).hexdigest()}" in shown.stdout
    assert f"preview (TRUNCATED: the first characters of {len(data)} bytes):" in shown.stdout
    assert "  | line one\n" in shown.stdout
    assert "… [truncated]" in shown.stdout

    short = await request(env, "write_file", {"path": "b.txt", "content": "hi"})
    assert (await detail(env, short))["args_summary"]["preview_truncated"] is False


@needs_box
async def test_secrets_are_redacted_everywhere_and_the_hash_still_binds(env) -> None:
    secret_argv = ["grep", f"--token={SK}", "-e", f"X: {AIS}", "notes.txt"]
    approval_id = await request(env, "run_command", {"argv": secret_argv})
    other_id = await request(
        env,
        "run_command",
        {"argv": [*secret_argv[:1], "--token=sk-zzzzzzzzzzzzzz", *secret_argv[2:]]},
    )
    item, other = await detail(env, approval_id), await detail(env, other_id)
    api_text = json.dumps(item)
    assert SK not in api_text
    assert AIS not in api_text
    assert item["args_summary"]["argv"][1] == "--token=[REDACTED]"
    assert item["args_summary"]["argv"][3] == "X: [REDACTED]"
    # Redacted alike, still two different calls: the hash of the real arguments differs.
    assert item["args_summary"] == other["args_summary"]
    assert item["args_hash"] != other["args_hash"]

    approved = await env.client.post(
        f"/approvals/{approval_id}/approve", json={}, headers=env.headers("b", "admin")
    )
    assert approved.status_code == 200
    audit_text = all_audit_text(env)
    assert SK not in audit_text
    assert AIS not in audit_text
    assert (
        "--token=[REDACTED]"
        in approval_rows(env, approval_id)["approval:approved"]["arguments"]["argv"]
    )

    # The other call's arguments look the same once redacted, but are refused.
    swapped = await env.call(
        "run_command",
        "a",
        "admin",
        arguments={"argv": (await detail(env, other_id))["args_summary"]["argv"]},
        approval_id=approval_id,
    )
    assert (swapped.status_code, swapped.json()["error"]["code"]) == (
        409,
        "approval_arguments_mismatch",
    )
    different = await env.call(
        "run_command",
        "a",
        "admin",
        arguments={"argv": [*secret_argv[:1], "--token=sk-zzzzzzzzzzzzzz", *secret_argv[2:]]},
        approval_id=approval_id,
    )
    assert different.json()["error"]["code"] == "approval_arguments_mismatch"
    assert (await detail(env, approval_id))["status"] == "approved"  # not used up

    with respx.mock:
        respx.get(f"{BASE}/v1/approvals/{approval_id}").mock(
            return_value=httpx.Response(200, json=(await detail(env, approval_id)))
        )
        shown = cli("show", approval_id)
    assert shown.exit_code == 0, shown.output
    assert SK not in shown.stdout
    assert AIS not in shown.stdout
    assert "[1] '--token=[REDACTED]'" in shown.stdout
    assert item["args_hash"] in shown.stdout


@needs_box
async def test_a_different_argv_is_refused_with_the_approval_id(env) -> None:
    approval_id = await request(env, "run_command", {"argv": ARGV})
    await env.client.post(
        f"/approvals/{approval_id}/approve", json={}, headers=env.headers("b", "admin")
    )
    refused = await env.call(
        "run_command",
        "a",
        "admin",
        arguments={"argv": ["git", "log", "--grep=!rm -rf .", "x"]},
        approval_id=approval_id,
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        409,
        "approval_arguments_mismatch",
    )


def test_list_cuts_the_command_to_the_terminal_width_and_escapes_control_characters() -> None:
    item = {
        "id": "apr_1",
        "user": "dev",
        "tool": "run_command",
        "status": "pending",
        "args_summary": {"argv": ["echo", "a\nb", "x" * 300], "cwd": "."},
        "created_at": "2026-01-01T00:00:00.000000+00:00",
        "expires_at": "2026-01-01T01:00:00.000000+00:00",
    }
    with respx.mock:
        respx.get(f"{BASE}/v1/approvals").mock(
            return_value=httpx.Response(200, json={"data": [item]})
        )
        listing = cli("list", columns=120)
        respx.get(f"{BASE}/v1/approvals/apr_1").mock(return_value=httpx.Response(200, json=item))
        shown = cli("show", "apr_1")
    lines = listing.stdout.splitlines()
    assert len(lines) == 2
    assert all(len(line) <= 120 for line in lines)
    assert lines[1].endswith("…")
    assert "echo 'a\\nb' xxx" in lines[1]
    assert "  [1] 'a\\nb'\n" in shown.stdout
    assert "x" * 300 in shown.stdout  # show prints everything


async def test_git_add_and_commit_approvals_show_every_path_and_the_message(env) -> None:
    paths = [f"src/file_{n}.py" for n in range(30)]
    add_id = await request(env, "git_add", {"repo": ".", "paths": paths})
    assert (await detail(env, add_id))["args_summary"]["paths"] == paths
    message = f"fix: the thing\n\nused {AIS} to test"
    commit_id = await request(env, "git_commit", {"repo": ".", "message": message})
    shown_message = (await detail(env, commit_id))["args_summary"]["message"]
    assert shown_message == "fix: the thing\n\nused [REDACTED] to test"
    audit = approval_rows(env, commit_id)["approval:requested"]
    assert audit["arguments"]["message"] == shown_message
