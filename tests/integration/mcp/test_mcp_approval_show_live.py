"""Issue 11 end to end: the real gateway forwards ``/v1/approvals`` to a real MCP server,
and ``ai-suite approvals show|list`` runs as a subprocess and prints every argument."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from services.mcp.app import create_app
from services.mcp.settings import McpSettings
from services.security.db import Database
from tests.support.box import needs_box
from tests.support.live import serve_in_thread

AI_SUITE = str(Path(sys.executable).parent / "ai-suite")
ARGV = ["git", "log", "--grep=!id x", "x", "--token=sk-abcdef1234567890XYZ"]


def ai_suite(*args: str, key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AI_SUITE_API_KEY": key}
    env.pop("COLUMNS", None)
    return subprocess.run(
        [AI_SUITE, "approvals", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@needs_box
def test_approvals_show_prints_the_full_argv_through_the_gateway(start_gateway, keys, tmp_path):
    data_dir = tmp_path / "data"
    requester, approver = keys.create("ann", "admin"), keys.create("bob", "admin")
    with serve_in_thread(create_app(McpSettings(data_dir=data_dir))) as mcp_url:
        gateway = start_gateway(mcp_url=mcp_url)
        pending = httpx.post(
            f"{gateway}/v1/tools/run_command/call",
            headers={"Authorization": f"Bearer {requester}"},
            json={"arguments": {"argv": ARGV}},
            timeout=30,
        )
        assert pending.status_code == 202, pending.text
        approval_id = pending.json()["approval_id"]
        detail = httpx.get(
            f"{gateway}/v1/approvals/{approval_id}",
            headers={"Authorization": f"Bearer {approver}"},
            timeout=30,
        ).json()
        assert detail["args_summary"]["argv"] == [*ARGV[:4], "--token=[REDACTED]"]

        shown = ai_suite("show", approval_id, "--gateway-url", gateway, key=approver)
        listed = ai_suite("list", "--gateway-url", gateway, key=approver)

    assert shown.returncode == 0, shown.stderr
    assert "command:     git log '--grep=!id x' x '--token=[REDACTED]'" in shown.stdout
    assert "  [2] '--grep=!id x'\n" in shown.stdout
    assert f"args sha256: {detail['args_hash']}" in shown.stdout
    assert "sk-abcdef" not in shown.stdout
    assert listed.returncode == 0, listed.stderr
    assert "git log '--grep=!id x' x '--token=[REDACTED]'" in listed.stdout

    db = Database(data_dir / "security.db")
    try:
        rows = db.query(
            "SELECT details FROM audit_log WHERE action = 'approval:requested' AND resource = ?",
            (approval_id,),
        )
    finally:
        db.close()
    audited = json.loads(rows[0]["details"])
    assert audited["arguments"]["argv"] == detail["args_summary"]["argv"]
    assert audited["args_hash"] == detail["args_hash"]
