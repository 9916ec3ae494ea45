"""write_file's size limit is checked before an approval is created (red-team issue 11).

An oversize write used to get an approval request that could never run; now it is a 413
naming the limit, with no approval row and one ``invalid`` audit entry.
"""

from __future__ import annotations

from services.security.db import Database

LIMIT = 1_048_576  # MCP_MAX_WRITE_BYTES' default


def approvals(db: Database) -> int:
    return int(db.query_one("SELECT COUNT(*) FROM approval_requests")[0])


async def test_oversize_write_is_413_naming_the_limit_and_creates_no_approval(env) -> None:
    arguments = {"path": "big.txt", "content": "x" * (LIMIT + 1)}
    response = await env.call("write_file", "d", "developer", arguments=arguments)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "content_too_large"
    assert f"the limit is {LIMIT} bytes" in error["message"]
    assert "MCP_MAX_WRITE_BYTES" in error["message"]
    assert approvals(env.db) == 0
    assert not (env.workspace / "big.txt").exists()
    rows = env.db.query("SELECT outcome, status FROM audit_log WHERE action = 'tool:write_file'")
    assert [(r["outcome"], r["status"]) for r in rows] == [("invalid", 413)]


async def test_multibyte_content_is_measured_in_utf8_bytes(make_env) -> None:
    env = make_env(max_write_bytes=8)
    too_big = await env.call(
        "write_file", "d", "developer", arguments={"path": "k", "content": "한국어"}
    )
    assert too_big.status_code == 413  # 3 characters, 9 bytes
    fits = await env.call(
        "write_file", "d", "developer", arguments={"path": "k", "content": "한국"}
    )
    assert fits.status_code == 202  # 6 bytes: the approval is asked for
    assert approvals(env.db) == 1


async def test_an_admin_over_the_limit_gets_no_approval_either(make_env) -> None:
    env = make_env(max_write_bytes=4)
    response = await env.call(
        "write_file", "a", "admin", arguments={"path": "f", "content": "12345"}
    )
    assert response.status_code == 413
    assert approvals(env.db) == 0
