"""Open an official-SDK MCP client session, as an MCP client program would."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TextIO

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import InitializeResult

from services.core.settings import NO_ENV_FILE_VARIABLE


@asynccontextmanager
async def mcp_session(url: str, key: str) -> AsyncIterator[ClientSession]:
    """An initialised session to ``url``/mcp (streamable HTTP) with ``key`` on every request."""
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"})
        )
        read, write = await stack.enter_async_context(
            streamable_http_client(f"{url}/mcp", http_client=http)
        )
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


def child_env(**variables: str) -> dict[str, str]:
    """An explicit environment for an ``ai-suite`` child: ``variables`` plus PATH-like basics.

    Nothing else is inherited from the caller (no ports, no keys, no ``AI_SUITE_*``) except
    coverage's own ``COVERAGE_*`` variables, so that the child is measured like other
    subprocesses (``[tool.coverage.run] patch = ["subprocess"]``). It reads no ``.env`` file
    (the launching test's working directory may be a checkout with one).
    """
    basics = ("PATH", "HOME", "LANG", "USER", "LOGNAME", "TMPDIR")
    env = {name: os.environ[name] for name in basics if name in os.environ}
    env[NO_ENV_FILE_VARIABLE] = "1"
    env.update({k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")})
    env.update(variables)
    return env


@asynccontextmanager
async def stdio_session(
    command: str, args: list[str], env: dict[str, str], errlog: TextIO
) -> AsyncIterator[tuple[ClientSession, InitializeResult]]:
    """An initialised session with a command launched as an assistant would (stdio)."""
    params = StdioServerParameters(command=command, args=args, env=env)
    async with AsyncExitStack() as stack:
        read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
        session = await stack.enter_async_context(ClientSession(read, write))
        initialized = await session.initialize()
        yield session, initialized
