"""An MCP session belongs to the user who opened it (streamable HTTP, raw httpx on a socket).

Another user's request with that ``Mcp-Session-Id`` (POST, GET or DELETE) gets 404
"Session not found", exactly as for a session that does not exist; the owner's session
keeps working. The same user with a second key may use it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

PROTOCOL = "2025-06-18"
ACCEPT = "application/json, text/event-stream"


def message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a response (a JSON body or one SSE ``data:`` event)."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
    return json.loads(data[-1])


class Caller:
    def __init__(self, client: httpx.AsyncClient, url: str, key: str) -> None:
        self.client, self.url, self.key = client, f"{url}/mcp", key

    def headers(self, session: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}", "Accept": ACCEPT}
        if session:
            headers |= {"Mcp-Session-Id": session, "Mcp-Protocol-Version": PROTOCOL}
        return headers

    async def post(self, session: str | None, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(self.url, json=body, headers=self.headers(session))

    async def open(self) -> str:
        response = await self.post(
            None,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": {"name": "owner-test", "version": "1"},
                },
            },
        )
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.post(session, initialized)).status_code == 202
        return session

    async def tools(self, session: str) -> httpx.Response:
        return await self.post(session, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})

    async def delete(self, session: str) -> httpx.Response:
        return await self.client.delete(self.url, headers=self.headers(session))


async def test_another_user_cannot_use_or_delete_a_session(start_mcp) -> None:
    server = start_mcp()
    async with httpx.AsyncClient(timeout=10) as client:
        alice = Caller(client, server.url, server.key("alice", "developer"))
        mallory = Caller(client, server.url, server.key("mallory", "viewer"))
        session = await alice.open()

        deleted = await mallory.delete(session)
        assert deleted.status_code == 404, deleted.text
        assert "Session not found" in deleted.text
        used = await mallory.tools(session)
        assert used.status_code == 404, used.text
        assert "Session not found" in used.text
        # The same answer as for a session that never existed: nothing to learn.
        unknown = await mallory.tools("0" * 32)
        assert (unknown.status_code, unknown.text) == (used.status_code, used.text)

        listed = await alice.tools(session)
        assert listed.status_code == 200, listed.text
        assert "write_file" in {t["name"] for t in message(listed)["result"]["tools"]}

        # A second key of the same user is the same owner.
        alice_again = Caller(client, server.url, server.key("alice", "developer"))
        assert (await alice_again.tools(session)).status_code == 200

        assert (await alice.delete(session)).status_code == 200
        assert (await alice.tools(session)).status_code == 404
