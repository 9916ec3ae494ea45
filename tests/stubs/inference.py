"""TEST DOUBLE: a fake OpenAI-compatible inference server. Not a product feature.

Integration and end-to-end tests point the gateway at this app instead of a real LLM
server, so they run without a model and their answers are predictable:

* ``GET /v1/models`` lists the configured model ids.
* ``POST /v1/chat/completions`` answers ``"stub reply to: <last user message>"``, as one
  ``chat.completion`` object or, with ``"stream": true``, as Server-Sent Events: one
  ``chat.completion.chunk`` per word, a final chunk with ``finish_reason: "stop"``, then
  ``data: [DONE]``. The ``model`` field (and the ``x-stub-model`` header) repeat the model
  that was asked for, so tests can see where the gateway routed a request.
* ``GET /health`` answers ``{"status": "ok"}``.

Fault injection for resilience tests (applies to chat completions only)::

    POST /_stub/config  {"fail_next": 2, "fail_status": 503, "delay_seconds": 0.5}
    GET  /_stub/stats   -> request counts, injected failures, models asked for
    POST /_stub/reset   -> default config, zeroed stats

Run standalone: ``python -m tests.stubs.inference --port 8001 --host 127.0.0.1``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL_IDS = ("stub-model",)
REPLY_PREFIX = "stub reply to: "


class StubConfig(BaseModel):
    """Fault-injection knobs. Every field is optional in ``POST /_stub/config``."""

    model_config = ConfigDict(extra="forbid")

    fail_next: int = Field(default=0, ge=0)  # answer this many requests with fail_status
    fail_status: int = Field(default=503, ge=400, le=599)
    delay_seconds: float = Field(default=0.0, ge=0.0, le=600.0)  # before the response
    chunk_delay_seconds: float = Field(default=0.0, ge=0.0, le=60.0)  # between SSE chunks


class _StubState:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.config = StubConfig()
        self.requests: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.failures_injected = 0
        self.ids = itertools.count(1)
        self.request_ids: list[str] = []  # X-Request-ID of each chat request, in order

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "total_requests": sum(self.requests.values()),
            "failures_injected": self.failures_injected,
            "models": dict(self.models),
            "request_ids": list(self.request_ids),
            "config": self.config.model_dump(),
        }


def _error(status: int, message: str, kind: str) -> JSONResponse:
    # The OpenAI error envelope, so clients under test parse stub errors like real ones.
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": None}},
        status_code=status,
    )


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and "text" in part
        )
    return ""


def _reply_for(messages: Sequence[Any]) -> str:
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    last = _message_text(users[-1].get("content")) if users else ""
    return f"{REPLY_PREFIX}{last}"


def _word_count(text: str) -> int:
    return len(text.split())


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def create_stub_app(*, model_ids: list[str] | None = None) -> FastAPI:
    """A fresh stub server. With ``model_ids`` given, other models get a 404 error;
    without, any model name is accepted and ``/v1/models`` lists ``stub-model``."""
    listed = list(model_ids) if model_ids is not None else list(DEFAULT_MODEL_IDS)
    strict_models = model_ids is not None
    state = _StubState()
    app = FastAPI(title="inference stub (test double)", docs_url=None, redoc_url=None)
    app.state.stub = state

    @app.get("/health")
    async def health() -> dict[str, str]:
        state.requests["health"] += 1
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        state.requests["models"] += 1
        return {
            "object": "list",
            "data": [
                {"id": model_id, "object": "model", "created": 0, "owned_by": "stub"}
                for model_id in listed
            ],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        state.requests["chat_completions"] += 1
        state.request_ids.append(request.headers.get("x-request-id", ""))
        config = state.config
        if config.delay_seconds:
            await asyncio.sleep(config.delay_seconds)
        if config.fail_next > 0:
            config.fail_next -= 1
            state.failures_injected += 1
            return _error(config.fail_status, "injected failure", "stub_injected_failure")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not valid JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "invalid_request_error")
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            return _error(400, "'model' is required", "invalid_request_error")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty list", "invalid_request_error")
        state.models[model] += 1
        if strict_models and model not in listed:
            return _error(404, f"model {model!r} not found", "model_not_found")

        reply = _reply_for(messages)
        completion_id = f"chatcmpl-stub-{next(state.ids)}"
        created = int(time.time())
        prompt_tokens = sum(
            _word_count(_message_text(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": _word_count(reply),
            "total_tokens": prompt_tokens + _word_count(reply),
        }
        headers = {"x-stub-model": model}
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            chunks = _stream(
                completion_id,
                created,
                model,
                reply,
                usage if include_usage else None,
                config.chunk_delay_seconds,
            )
            return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
            headers=headers,
        )

    @app.post("/_stub/config")
    async def configure(request: Request) -> JSONResponse:
        try:
            changes = await request.json()
            state.config = StubConfig.model_validate(
                {**state.config.model_dump(), **(changes or {})}
            )
        except (ValueError, TypeError) as exc:  # bad JSON or a knob out of range
            return _error(422, str(exc), "invalid_request_error")
        return JSONResponse(state.config.model_dump())

    @app.get("/_stub/stats")
    async def stats() -> dict[str, Any]:
        return state.stats()

    @app.post("/_stub/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return state.stats()

    return app


async def _stream(
    completion_id: str,
    created: int,
    model: str,
    reply: str,
    usage: dict[str, int] | None,
    chunk_delay: float,
) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    # Like OpenAI: a first chunk carrying the role, then content, then an empty delta
    # with the finish reason, then (if asked) a usage chunk without choices.
    yield _sse(chunk({"role": "assistant", "content": ""}, None))
    for i, word in enumerate(reply.split(" ")):
        if chunk_delay:
            await asyncio.sleep(chunk_delay)
        yield _sse(chunk({"content": word if i == 0 else f" {word}"}, None))
    yield _sse(chunk({}, "stop"))
    if usage is not None:
        yield _sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
        )
    yield _sse("[DONE]")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible stub server (test double)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        help="model id to serve (repeatable); default: accept any model",
    )
    args = parser.parse_args(argv)
    uvicorn.run(create_stub_app(model_ids=args.models), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
