"""Fixtures shared by the unit tests of more than one package."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest


@pytest.fixture
def client_for() -> Callable[..., httpx.AsyncClient]:
    """An httpx client that calls an ASGI app in-process."""

    def make(app: object, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", **kwargs
        )

    return make
