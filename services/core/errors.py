"""One error shape for every service: the OpenAI API's.

``{"error": {"message", "type", "code", "param"}}`` with a real HTTP status, so
OpenAI clients raise their usual exceptions (AuthenticationError on 401,
PermissionDeniedError on 403, ...) and nothing answers 200 with an error inside.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type or _TYPES.get(status, "api_error" if status < 500 else "server_error")
        self.param = param
        self.headers = headers
        self.extra = extra or {}


def error_body(
    status: int,
    message: str,
    *,
    code: str | None = None,
    type: str | None = None,
    param: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    kind = type or _TYPES.get(status, "api_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": param, **extra}}


def error_response(exc: ApiError) -> JSONResponse:
    body = error_body(
        exc.status, exc.message, code=exc.code, type=exc.type, param=exc.param, **exc.extra
    )
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail) if exc.detail else "error"
    if exc.status_code == 404:
        message = "no such route; see /docs for the API"
    elif exc.status_code == 405:
        message = f"method not allowed: {message}"
    return JSONResponse(
        error_body(exc.status_code, message),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    first_param = None
    for err in exc.errors():
        loc = ".".join(str(part) for part in err.get("loc", ()) if part != "body")
        first_param = first_param or loc or None
        problems.append(f"{loc or 'body'}: {err.get('msg')}")
    return JSONResponse(
        error_body(
            422,
            "invalid request: " + "; ".join(problems),
            code="invalid_request",
            param=first_param,
        ),
        status_code=422,
    )


# The OpenAPI schema of every error body above (components/schemas/ApiError).
ERROR_SCHEMA: dict[str, Any] = {
    "title": "ApiError",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code", "param"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"]},
            },
            "additionalProperties": True,
        }
    },
    "additionalProperties": False,
}
_ERROR_REF = {"$ref": "#/components/schemas/ApiError"}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Make an OpenAPI document describe the errors the handlers above send: FastAPI
    declares every 422 as its own ``{"detail": [...]}`` (HTTPValidationError), which no
    service answers; each operation gets the ApiError shape for 422 and as its
    ``default`` response (401, 403, 404, 409, 413, 429, 503, ...)."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            error = {
                "description": "Error",
                "content": {"application/json": {"schema": _ERROR_REF}},
            }
            if "422" in responses:
                responses["422"] = {**error, "description": "Validation Error"}
            responses.setdefault("default", error)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    schemas["ApiError"] = ERROR_SCHEMA
    return spec


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    fastapi_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(fastapi_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
