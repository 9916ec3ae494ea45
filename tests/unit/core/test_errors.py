"""One error shape everywhere: the OpenAI API's, with a real HTTP status."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from services.core.app import build_service_app
from services.core.context import REQUEST_ID_HEADER
from services.core.errors import ApiError, error_body, install_error_handlers


class Thing(BaseModel):
    name: str
    count: int


def make_app() -> FastAPI:
    parts = build_service_app("svc")
    app = parts.app
    install_error_handlers(app)

    @app.get("/conflict")
    async def conflict() -> None:
        raise ApiError(409, "name already taken", code="duplicate", param="name")

    @app.get("/teapot")
    async def teapot() -> None:
        raise ApiError(
            418,
            "short and stout",
            headers={"Retry-After": "3"},
            extra={"retry_after": 3},
        )

    @app.get("/server")
    async def server() -> None:
        raise ApiError(502, "upstream failed", code="upstream_error")

    @app.get("/typed")
    async def typed() -> None:
        raise ApiError(400, "custom", type="custom_error")

    @app.get("/http-exception")
    async def http_exception() -> None:
        raise HTTPException(400, "plain starlette error")

    @app.post("/things")
    async def create(thing: Thing) -> dict:
        return thing.model_dump()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"item_id": item_id}

    return app


@pytest.fixture
async def client(client_for: Callable[..., httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app()) as c:
        yield c


def assert_openai_shape(body: dict) -> dict:
    assert set(body) == {"error"}
    error = body["error"]
    assert {"message", "type", "code", "param"} <= set(error)
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


async def test_api_error_shape_and_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "message": "name already taken",
            "type": "conflict_error",
            "code": "duplicate",
            "param": "name",
        }
    }
    assert REQUEST_ID_HEADER in response.headers


async def test_api_error_headers_and_extra_fields(client: httpx.AsyncClient) -> None:
    response = await client.get("/teapot")
    assert response.status_code == 418
    assert response.headers["Retry-After"] == "3"
    error = assert_openai_shape(response.json())
    assert error["type"] == "api_error"
    assert error["retry_after"] == 3


async def test_server_errors_have_server_error_type(client: httpx.AsyncClient) -> None:
    response = await client.get("/server")
    assert response.status_code == 502
    error = assert_openai_shape(response.json())
    assert error["type"] == "server_error"
    assert error["code"] == "upstream_error"


async def test_explicit_type_wins(client: httpx.AsyncClient) -> None:
    error = assert_openai_shape((await client.get("/typed")).json())
    assert error["type"] == "custom_error"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "conflict_error"),
        (413, "invalid_request_error"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (418, "api_error"),
        (500, "server_error"),
        (503, "server_error"),
    ],
)
def test_types_by_status(status: int, kind: str) -> None:
    assert ApiError(status, "m").type == kind
    assert error_body(status, "m") == {
        "error": {"message": "m", "type": kind, "code": None, "param": None}
    }


async def test_unknown_route_is_404_in_the_same_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    error = assert_openai_shape(response.json())
    assert error["type"] == "not_found_error"
    assert "no such route" in error["message"]
    assert error["code"] is None


async def test_wrong_method_is_405_in_the_same_shape(client: httpx.AsyncClient) -> None:
    response = await client.delete("/conflict")
    assert response.status_code == 405
    error = assert_openai_shape(response.json())
    assert error["message"].startswith("method not allowed")
    assert response.headers["allow"] == "GET"


async def test_starlette_http_exception(client: httpx.AsyncClient) -> None:
    response = await client.get("/http-exception")
    assert response.status_code == 400
    error = assert_openai_shape(response.json())
    assert error["message"] == "plain starlette error"
    assert error["type"] == "invalid_request_error"


async def test_validation_error_names_the_missing_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "x"})
    assert response.status_code == 422
    error = assert_openai_shape(response.json())
    assert error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "count"
    assert "count" in error["message"]
    assert error["message"].startswith("invalid request: ")


async def test_validation_error_names_every_bad_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": 5, "count": "many"})
    error = assert_openai_shape(response.json())
    assert "name" in error["message"]
    assert "count" in error["message"]


async def test_validation_error_for_body_that_is_not_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/things", content=b"not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert_openai_shape(response.json())


async def test_path_param_validation_names_the_param(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/abc")
    assert response.status_code == 422
    error = assert_openai_shape(response.json())
    assert "item_id" in error["message"]
    assert error["param"] == "path.item_id"


async def test_errors_are_counted_with_their_status(client: httpx.AsyncClient) -> None:
    await client.get("/conflict")
    await client.get("/no/such/route")
    text = (await client.get("/metrics")).text
    assert 'route="/conflict",service="svc",status="409"' in text
    assert 'route="<unmatched>",service="svc",status="404"' in text


async def test_openapi_declares_the_error_shape_the_handlers_send(
    client: httpx.AsyncClient,
) -> None:
    """FastAPI declares a 422 as ``{"detail": [...]}``; ours is the OpenAI shape, and every
    operation's ``default`` response says so (schemathesis validates error bodies by it)."""
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    ref = {"$ref": "#/components/schemas/ApiError"}
    create = spec["paths"]["/things"]["post"]["responses"]
    assert create["422"]["content"]["application/json"]["schema"] == ref
    for operations in spec["paths"].values():
        for operation in operations.values():
            assert operation["responses"]["default"]["content"]["application/json"]["schema"] == ref
    validator = jsonschema.Draft202012Validator(schemas["ApiError"])
    answers = [
        await client.post("/things", json={"name": 1}),
        await client.get("/conflict"),
        await client.get("/teapot"),
        await client.get("/http-exception"),
        await client.get("/no-such-route"),
        await client.delete("/things"),
    ]
    for answer in answers:
        assert answer.status_code >= 400
        validator.validate(answer.json())
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"detail": [{"loc": ["body"], "msg": "x", "type": "y"}]})
