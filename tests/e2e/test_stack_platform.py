"""The platform under the stack plugin: shared stack, real clients, injected faults."""

from __future__ import annotations

import time

import openai
import pytest
from ai_suite_pytest.stack import Stack

from services.security.db import Database
from services.security.keys import KeyStore
from services.security.migrations import migrate


@pytest.fixture(scope="module")
def developer_key(stack: Stack) -> str:
    db = Database(stack.data_dir / "security.db")
    try:
        migrate(db)
        return KeyStore(db).create_key(f"dev-{id(db)}", "developer").key
    finally:
        db.close()


def chat(stack: Stack, key: str) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=f"{stack.url('gateway')}/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "are you there?"}]
    )


def test_chat_through_the_stack(stack: Stack, developer_key: str) -> None:
    assert "are you there?" in (chat(stack, developer_key).choices[0].message.content or "")


@pytest.mark.stack_exclusive
def test_upstream_down_then_back(stack: Stack, developer_key: str) -> None:
    stack.kill("stub-inference")
    try:
        with pytest.raises(openai.APIStatusError) as info:
            chat(stack, developer_key)
        assert info.value.status_code == 503
    finally:
        stack.start("stub-inference")
    stack.wait_healthy("stub-inference")
    # The breaker may have opened; it lets a trial through after BREAKER_RESET_SECONDS.
    deadline = time.monotonic() + 15
    while True:
        try:
            assert chat(stack, developer_key).choices
            break
        except openai.APIStatusError:
            if time.monotonic() > deadline:
                pytest.fail("the gateway did not recover after the upstream came back")
            time.sleep(0.2)


@pytest.mark.stack_exclusive
def test_gateway_restart_keeps_keys(stack: Stack, developer_key: str) -> None:
    stack.restart("gateway")
    stack.wait_healthy("gateway")
    assert chat(stack, developer_key).choices
