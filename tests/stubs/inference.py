"""TEST DOUBLE: a fake OpenAI-compatible inference server. Not a product feature.

Integration and end-to-end tests point the gateway at this app instead of a real LLM
server, so they run without a model and their answers are predictable. It behaves like
Ollama, vLLM and LM Studio where the gateway must cope with them, not like the gateway
would wish:

* ``GET /v1/models`` lists the served model ids: by default ``stub-model:latest`` (a
  name with a colon, as Ollama names models), or those given with ``model_ids``.
* A request for a model that is not listed is answered **404** with an OpenAI-style
  error (``code: "model_not_found"``), unless ``accept_any_model=True`` (llama.cpp
  ignores the name).
* With ``api_key`` set, every ``/v1/...`` request needs ``Authorization: Bearer <key>``
  (401 otherwise), like ``vllm serve --api-key``.
* ``POST /v1/chat/completions`` answers ``"stub reply to: <last user message>"``, as one
  ``chat.completion`` object or, with ``"stream": true``, as Server-Sent Events: one
  ``chat.completion.chunk`` per word, a final chunk with ``finish_reason: "stop"``, then
  (with ``stream_options.include_usage``) a usage chunk, then ``data: [DONE]``.
* ``POST /v1/completions`` (legacy) answers ``"stub reply to: <prompt>"`` as a
  ``text_completion``, streamed the same way with ``"stream": true``.
* ``POST /v1/embeddings`` answers one deterministic 8-dimensional vector per input,
  as floats or, with ``encoding_format: "base64"``, as little-endian float32 in base64.
* Every answer carries ``usage`` (word counts) and the ``x-stub-model`` header repeats
  the model asked for, so tests can see where the gateway routed a request.
* ``GET /health`` answers ``{"status": "ok"}``.

Fault injection for resilience tests (applies to chat, completions and embeddings)::

    POST /_stub/config  {"fail_next": 2, "fail_status": 503, "delay_seconds": 0.5,
                         "model_ids": ["other:7b"]}   # model_ids: change the served list
    GET  /_stub/stats   -> request counts, injected failures, models asked for
    POST /_stub/reset   -> default config, zeroed stats

Run standalone: ``python -m tests.stubs.inference --port 8001 --host 127.0.0.1``
(``--model NAME`` repeatable, ``--accept-any-model``, ``--api-key KEY``,
``--no-access-log``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import secrets
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL_IDS = ("stub-model:latest",)
REPLY_PREFIX = "stub reply to: "
EMBEDDING_DIMENSIONS = 8


class StubConfig(BaseModel):
    """Fault-injection knobs. Every field is optional in ``POST /_stub/config``."""

    model_config = ConfigDict(extra="forbid")

    fail_next: int = Field(default=0, ge=0)  # answer this many requests with fail_status
    fail_status: int = Field(default=503, ge=400, le=599)
    delay_seconds: float = Field(default=0.0, ge=0.0, le=600.0)  # before the response
    chunk_delay_seconds: float = Field(default=0.0, ge=0.0, le=60.0)  # between SSE chunks
    model_ids: list[str] | None = None  # the served models; None: those of create_stub_app


class _StubState:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.config = StubConfig()
        self.requests: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.failures_injected = 0
        self.ids = itertools.count(1)
        self.request_ids: list[str] = []  # X-Request-ID of each inference request, in order

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "total_requests": sum(self.requests.values()),
            "failures_injected": self.failures_injected,
            "models": dict(self.models),
            "request_ids": list(self.request_ids),
            "config": self.config.model_dump(),
        }


def _error(
    status: int, message: str, kind: str, *, code: str | None = None, param: str | None = None
) -> JSONResponse:
    # The OpenAI error envelope, so clients under test parse stub errors like real ones.
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}},
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


def _texts(value: Any) -> list[str] | None:
    """A prompt or embeddings input: a string, strings, or token ids; None if neither."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, int) for v in value):
            return [" ".join(str(v) for v in value)]
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return [" ".join(str(t) for t in v) for v in value]
    return None


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0 - 0.5, 6) for b in digest[:EMBEDDING_DIMENSIONS]]


def _usage(prompt_tokens: int, completion_tokens: int | None) -> dict[str, int]:
    if completion_tokens is None:  # embeddings
        return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def create_stub_app(
    *,
    model_ids: list[str] | None = None,
    accept_any_model: bool = False,
    api_key: str | None = None,
) -> FastAPI:
    """A fresh stub server serving ``model_ids`` (default ``stub-model:latest``).

    Other model names get a 404, unless ``accept_any_model``. With ``api_key``, the
    ``/v1`` routes need it as a bearer token.
    """
    default_ids = list(model_ids) if model_ids is not None else list(DEFAULT_MODEL_IDS)
    state = _StubState()
    app = FastAPI(title="inference stub (test double)", docs_url=None, redoc_url=None)
    app.state.stub = state

    def served() -> list[str]:
        ids = state.config.model_ids
        return list(ids) if ids is not None else default_ids

    def unauthorized(request: Request) -> JSONResponse | None:
        if api_key is None:
            return None
        sent = request.headers.get("authorization", "")
        if secrets.compare_digest(sent.encode(), f"Bearer {api_key}".encode()):
            return None
        return _error(401, "invalid or missing API key", "invalid_request_error", code="401")

    async def admit(request: Request, name: str) -> JSONResponse | dict[str, Any]:
        """Count, authenticate, delay, inject failures, parse; the body or an error."""
        state.requests[name] += 1
        state.request_ids.append(request.headers.get("x-request-id", ""))
        refused = unauthorized(request)
        if refused is not None:
            return refused
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
        if not isinstance(model, str) or not model:
            return _error(400, "'model' is required", "invalid_request_error", param="model")
        state.models[model] += 1
        if not accept_any_model and model not in served():
            return _error(
                404,
                f"The model `{model}` does not exist.",
                "invalid_request_error",
                code="model_not_found",
                param="model",
            )
        return body

    @app.get("/health")
    async def health() -> dict[str, str]:
        state.requests["health"] += 1
        return {"status": "ok"}

    @app.get("/v1/models", response_model=None)
    async def list_models(request: Request) -> JSONResponse | dict[str, Any]:
        state.requests["models"] += 1
        refused = unauthorized(request)
        if refused is not None:
            return refused
        return {
            "object": "list",
            "data": [
                {"id": model_id, "object": "model", "created": 0, "owned_by": "stub"}
                for model_id in served()
            ],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        body = await admit(request, "chat_completions")
        if isinstance(body, JSONResponse):
            return body
        model = body["model"]
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty list", "invalid_request_error")
        reply = _reply_for(messages)
        completion_id = f"chatcmpl-stub-{next(state.ids)}"
        created = int(time.time())
        prompt_tokens = sum(
            _word_count(_message_text(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        usage = _usage(prompt_tokens, _word_count(reply))
        headers = {"x-stub-model": model}
        if body.get("stream") is True:

            def chunk(delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
                return {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": delta,
                            "logprobs": None,
                            "finish_reason": finish_reason,
                        }
                    ],
                }

            # Like OpenAI: a first chunk carrying the role, then the content.
            first = chunk({"role": "assistant", "content": ""}, None)
            pieces = [chunk({"content": word}, None) for word in _words(reply)]
            chunks = _stream(
                [first, *pieces],
                chunk({}, "stop"),
                {**chunk({}, None), "choices": [], "usage": usage},
                include_usage=_include_usage(body),
                chunk_delay=state.config.chunk_delay_seconds,
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

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> JSONResponse | StreamingResponse:
        body = await admit(request, "completions")
        if isinstance(body, JSONResponse):
            return body
        model = body["model"]
        prompts = _texts(body.get("prompt"))
        if prompts is None:
            return _error(
                400,
                "'prompt' must be a string, a list of strings or token ids",
                "invalid_request_error",
                param="prompt",
            )
        prompt = prompts[0]
        reply = f"{REPLY_PREFIX}{prompt}"
        completion_id = f"cmpl-stub-{next(state.ids)}"
        created = int(time.time())
        usage = _usage(sum(_word_count(p) for p in prompts), _word_count(reply))
        headers = {"x-stub-model": model}

        def choice(text: str, finish_reason: str | None) -> dict[str, Any]:
            return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}

        def envelope(choices: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": choices,
            }

        if body.get("stream") is True:
            chunks = _stream(
                [envelope([choice(word, None)]) for word in _words(reply)],
                envelope([choice("", "stop")]),
                {**envelope([]), "usage": usage},
                include_usage=_include_usage(body),
                chunk_delay=state.config.chunk_delay_seconds,
            )
            return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)
        return JSONResponse({**envelope([choice(reply, "stop")]), "usage": usage}, headers=headers)

    @app.post("/v1/embeddings", response_model=None)
    async def embeddings(request: Request) -> JSONResponse:
        body = await admit(request, "embeddings")
        if isinstance(body, JSONResponse):
            return body
        inputs = _texts(body.get("input"))
        if inputs is None:
            return _error(
                400,
                "'input' must be a string, a list of strings or token ids",
                "invalid_request_error",
                param="input",
            )
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return _error(
                400,
                "'encoding_format' must be 'float' or 'base64'",
                "invalid_request_error",
                param="encoding_format",
            )
        data = []
        for index, text in enumerate(inputs):
            vector = _vector(text)
            embedding: list[float] | str = vector
            if encoding == "base64":
                packed = struct.pack(f"<{len(vector)}f", *vector)
                embedding = base64.b64encode(packed).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": _usage(sum(_word_count(t) for t in inputs), None),
            },
            headers={"x-stub-model": body["model"]},
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


def _words(reply: str) -> list[str]:
    """The reply in streamed pieces: each word, with its leading space after the first."""
    return [word if i == 0 else f" {word}" for i, word in enumerate(reply.split(" "))]


async def _stream(
    pieces: list[dict[str, Any]],
    finish: dict[str, Any],
    usage: dict[str, Any],
    *,
    include_usage: bool,
    chunk_delay: float,
) -> AsyncIterator[bytes]:
    # Like OpenAI: the content pieces, then a chunk with the finish reason, then (if
    # asked) a usage chunk without choices, then [DONE].
    for piece in pieces:
        if chunk_delay:
            await asyncio.sleep(chunk_delay)
        yield _sse(piece)
    yield _sse(finish)
    if include_usage:
        yield _sse(usage)
    yield _sse("[DONE]")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible stub server (test double)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        help=f"model id to serve (repeatable); default: {', '.join(DEFAULT_MODEL_IDS)}",
    )
    parser.add_argument(
        "--accept-any-model",
        action="store_true",
        help="answer any model name, as llama.cpp does (default: 404 for unlisted names)",
    )
    parser.add_argument("--api-key", default=None, help="require this bearer token on /v1")
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="no line per request (benchmarks/bench_gateway.py: logging is not what it measures)",
    )
    args = parser.parse_args(argv)
    app = create_stub_app(
        model_ids=args.models, accept_any_model=args.accept_any_model, api_key=args.api_key
    )
    uvicorn.run(app, host=args.host, port=args.port, access_log=not args.no_access_log)


if __name__ == "__main__":
    main()
