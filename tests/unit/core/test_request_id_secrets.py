"""A caller's X-Request-ID shaped like a credential is replaced: never echoed, never logged."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI

from services.core.app import build_service_app
from services.core.context import REQUEST_ID_HEADER, request_id_var
from services.core.logging import JsonFormatter
from services.core.middleware import request_id_of

HEX32 = re.compile(r"^[0-9a-f]{32}$")
KEY = "ais_" + "Ab3dEf6hIj9kLm2oPq5sTu8wXy1zAb4dEf7hIj0kLm3"
SECRET_IDS = [KEY, "sk-proj1234567890abcdef", f"token_{KEY}", "Bearer sk-abcdefgh12345678"]


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything the service's loggers write, as the JSON lines a running service emits."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("svc"))
    logger = logging.getLogger("ai_suite")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def make_app() -> FastAPI:
    app: FastAPI = build_service_app("svc").app

    @app.get("/echo")
    async def echo() -> dict:
        logging.getLogger("ai_suite.svc.handler").info("handled")
        return {"request_id": request_id_var.get()}

    return app


@pytest.mark.parametrize("hostile", SECRET_IDS)
async def test_a_request_id_shaped_like_a_key_is_replaced_not_echoed_or_logged(
    client_for: Callable[..., httpx.AsyncClient], logs: io.StringIO, hostile: str
) -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/echo", headers={REQUEST_ID_HEADER: hostile})
    assert response.status_code == 200
    echoed = response.headers[REQUEST_ID_HEADER]
    assert HEX32.fullmatch(echoed)
    assert response.json()["request_id"] == echoed
    text = logs.getvalue()
    assert '"handled"' in text
    assert f'"request_id": "{echoed}"' in text
    assert hostile not in text
    assert "sk-" not in text
    assert "ais_" not in text


async def test_a_normal_request_id_is_kept_echoed_and_logged(
    client_for: Callable[..., httpx.AsyncClient], logs: io.StringIO
) -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/echo", headers={REQUEST_ID_HEADER: "req-42.a_b"})
    assert response.headers[REQUEST_ID_HEADER] == "req-42.a_b"
    assert response.json()["request_id"] == "req-42.a_b"
    assert '"request_id": "req-42.a_b"' in logs.getvalue()


def test_request_id_of_keeps_good_ids_and_replaces_keys() -> None:
    assert request_id_of(b"abc-123") == "abc-123"
    assert HEX32.fullmatch(request_id_of(KEY.encode()))
    assert HEX32.fullmatch(request_id_of(None))


def test_the_formatter_redacts_a_request_id_set_by_other_code(logs: io.StringIO) -> None:
    token = request_id_var.set(KEY)
    try:
        logging.getLogger("ai_suite.svc.other").info("outside a request")
    finally:
        request_id_var.reset(token)
    assert KEY not in logs.getvalue()
    assert '"request_id": "[REDACTED]"' in logs.getvalue()
