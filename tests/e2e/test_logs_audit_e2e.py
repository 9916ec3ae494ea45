"""Issue 15's "done when", as a user tries it on ``ai-suite up``: ``ai-suite logs -f gateway``
follows the gateway; ``ai-suite audit --user alice --since 1h`` lists her calls, and so does
``GET /v1/audit`` for an admin (not for her)."""

from __future__ import annotations

import json
import queue
import subprocess
import threading

import httpx
import openai

from tests.e2e.conftest import AI_SUITE, Platform


def test_logs_follow_the_gateway(shared_platform: Platform) -> None:
    platform = shared_platform
    follower = subprocess.Popen(
        [AI_SUITE, "logs", "-f", "gateway", "--json", "--request-id", "e2e-follow-1"],
        env=platform.env,
        cwd=platform.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump)
    reader.start()
    try:
        # Sent until the follower prints it: it may start reading after the first one.
        entry = None
        for _ in range(120):
            httpx.get(
                f"{platform.gateway_url}/v1/models",
                headers={
                    "Authorization": f"Bearer {platform.admin_key}",
                    "X-Request-ID": "e2e-follow-1",
                },
                trust_env=False,
            )
            try:
                entry = json.loads(lines.get(timeout=1))
                break
            except queue.Empty:
                continue
        assert entry is not None, "ai-suite logs -f printed nothing"
        assert entry["service"] == "gateway"
        assert entry["request_id"] == "e2e-follow-1"
        assert entry["route"] == "/v1/models"
    finally:
        follower.terminate()
        follower.wait(timeout=30)
        reader.join(timeout=30)
        if follower.stdout is not None:
            follower.stdout.close()


def test_alice_s_calls_of_the_last_hour(shared_platform: Platform) -> None:
    platform = shared_platform
    created = platform.cli("keys", "create", "--user", "alice", "--role", "developer")
    assert created.returncode == 0, created.stderr
    alice = created.stdout.strip()
    client = openai.OpenAI(base_url=f"{platform.gateway_url}/v1", api_key=alice, max_retries=0)
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])

    listed = platform.cli("audit", "--user", "alice", "--since", "1h", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["action"], r["outcome"]) for r in rows] == [("chat:create", "ok")]

    as_admin = httpx.get(
        f"{platform.gateway_url}/v1/audit",
        params={"user": "alice", "since": "1h"},
        headers={"Authorization": f"Bearer {platform.admin_key}"},
        trust_env=False,
    )
    assert as_admin.status_code == 200, as_admin.text
    assert [r["action"] for r in as_admin.json()["data"]] == ["chat:create"]
    as_alice = httpx.get(
        f"{platform.gateway_url}/v1/audit",
        headers={"Authorization": f"Bearer {alice}"},
        trust_env=False,
    )
    assert as_alice.status_code == 403
    reads = platform.cli("audit", "--action", "audit.read", "--json")
    readers = {json.loads(line)["user"] for line in reads.stdout.splitlines()}
    assert "admin" in readers
    assert any(user.startswith("cli:") for user in readers)
