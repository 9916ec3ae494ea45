"""Redis and PostgreSQL from the same stack file, talked to with their own clients."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(autouse=True)
def _needs_redis_and_postgres(stack):
    # TEMPORARY until branch stackgen merges: the stack plugin on this branch has no
    # tcp/command readiness, so stack.app-only.yaml runs without these services.
    if not {"redis", "postgres"} <= set(stack.services):
        pytest.skip("stack plugin without tcp/command readiness: lands with branch stackgen")


def run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout


def test_redis_answers(stack):
    port = str(stack.port("redis"))
    assert run("redis-cli", "-p", port, "PING").strip() == "PONG"
    run("redis-cli", "-p", port, "SET", "greeting", "hello")
    assert run("redis-cli", "-p", port, "GET", "greeting").strip() == "hello"


def test_postgres_answers(stack):
    psql = ["psql", "-h", "127.0.0.1", "-p", str(stack.port("postgres")), "-U", "postgres"]
    out = run(*psql, "-tAc", "SELECT current_setting('fsync'), 40 + 2")
    assert out.strip() == "off|42"
