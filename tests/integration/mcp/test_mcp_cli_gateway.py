"""``ai-suite approvals`` against a real server reached under ``/v1`` (as the gateway forwards)."""

from __future__ import annotations

import httpx
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.routing import Mount

from services.cli.approvals import approvals
from services.mcp.app import create_app
from services.mcp.settings import McpSettings
from tests.support.keys import make_key
from tests.support.live import serve_in_thread


def test_cli_lists_and_approves_through_http(tmp_path) -> None:
    data_dir = tmp_path / "data"
    dev = make_key(data_dir / "security.db", "dev", "developer")
    admin = make_key(data_dir / "security.db", "boss", "admin")
    mcp = create_app(McpSettings(data_dir=data_dir))
    # What the gateway does: /v1/approvals... → MCP /approvals...
    gateway_like = Starlette(routes=[Mount("/v1", app=mcp)])
    with serve_in_thread(gateway_like) as url:
        pending = httpx.post(
            f"{url}/v1/tools/write_file/call",
            headers={"Authorization": f"Bearer {dev}"},
            json={"arguments": {"path": "f.txt", "content": "x"}},
        )
        assert pending.status_code == 202
        approval_id = pending.json()["approval_id"]
        runner = CliRunner()
        base = ["--gateway-url", url]
        listed = runner.invoke(approvals, ["list", "--key", admin, *base])
        assert listed.exit_code == 0, listed.output
        assert approval_id in listed.stdout
        as_dev = runner.invoke(approvals, ["approve", approval_id, "--key", dev, *base])
        assert as_dev.exit_code == 1
        assert "not allowed" in as_dev.stderr
        ok = runner.invoke(
            approvals, ["approve", approval_id, *base], env={"AI_SUITE_API_KEY": admin}
        )
        assert ok.exit_code == 0, ok.output
        again = runner.invoke(
            approvals,
            ["reject", approval_id, "--reason", "late", *base],
            env={"AI_SUITE_API_KEY": admin},
        )
        assert again.exit_code == 1
        assert "not pending" in again.stderr
        ran = httpx.post(
            f"{url}/v1/tools/write_file/call",
            headers={"Authorization": f"Bearer {dev}"},
            json={"arguments": {"path": "f.txt", "content": "x"}, "approval_id": approval_id},
        )
        assert ran.status_code == 200
    assert (data_dir / "workspace" / "f.txt").read_text() == "x"
