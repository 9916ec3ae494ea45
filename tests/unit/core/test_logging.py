"""JSON log lines: fields, context, extras, and redaction of credentials."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.context import request_id_var, route_var, user_var
from services.core.logging import REDACTED, JsonFormatter, configure_logging, redact
from services.security.keys import generate_key


class Capture:
    """A logger whose records are formatted by JsonFormatter into a StringIO."""

    def __init__(self, name: str) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter("svc"))
        self.logger = logging.getLogger(name)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def last(self) -> dict[str, Any]:
        return self.entries()[-1]

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.propagate = True
        self.logger.setLevel(logging.NOTSET)


@pytest.fixture
def cap(request: pytest.FixtureRequest) -> Iterator[Capture]:
    capture = Capture(f"test_logging.{request.node.name}")
    yield capture
    capture.close()


def _format(message: str, **attrs: Any) -> str:
    record = logging.makeLogRecord(
        {"name": "t", "levelno": logging.INFO, "levelname": "INFO", "msg": message, **attrs}
    )
    return JsonFormatter("svc").format(record)


def test_one_json_object_per_line(cap: Capture) -> None:
    cap.logger.info("first")
    cap.logger.warning('second\nwith a newline and "quotes"')
    cap.logger.error("third %s", "arg")
    lines = cap.lines()
    assert len(lines) == 3
    entries = [json.loads(line) for line in lines]
    assert all(isinstance(entry, dict) for entry in entries)
    assert [e["message"] for e in entries] == [
        "first",
        'second\nwith a newline and "quotes"',
        "third arg",
    ]


def test_common_fields(cap: Capture) -> None:
    cap.logger.warning("hello %s", "world")
    entry = cap.last()
    assert entry["level"] == "WARNING"
    assert entry["service"] == "svc"
    assert entry["logger"] == cap.logger.name
    assert entry["message"] == "hello world"
    assert entry["request_id"] is None
    when = datetime.fromisoformat(entry["time"])
    assert when.utcoffset() is not None
    assert when.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - when).total_seconds()) < 60
    assert {"time", "level", "service", "logger", "message", "request_id"} <= entry.keys()


def test_request_id_from_context_and_from_record(cap: Capture) -> None:
    token = request_id_var.set("req-123")
    try:
        cap.logger.info("in a request")
        assert cap.last()["request_id"] == "req-123"
        cap.logger.info("explicit", extra={"request_id": "other"})
        assert cap.last()["request_id"] == "other"
    finally:
        request_id_var.reset(token)
    cap.logger.info("after")
    assert cap.last()["request_id"] is None


def test_context_fields(cap: Capture) -> None:
    tokens = (user_var.set("alice"), route_var.set("/v1/items/{id}"))
    try:
        cap.logger.info("done", extra={"status": 201, "duration_ms": 12.5})
    finally:
        user_var.reset(tokens[0])
        route_var.reset(tokens[1])
    entry = cap.last()
    assert entry["user"] == "alice"
    assert entry["route"] == "/v1/items/{id}"
    assert entry["status"] == 201
    assert entry["duration_ms"] == 12.5


def test_context_fields_absent_when_unset(cap: Capture) -> None:
    cap.logger.info("plain")
    entry = cap.last()
    for name in ("user", "route", "status", "duration_ms"):
        assert name not in entry


def test_record_user_overrides_context(cap: Capture) -> None:
    token = user_var.set("alice")
    try:
        cap.logger.info("x", extra={"user": "bob"})
    finally:
        user_var.reset(token)
    assert cap.last()["user"] == "bob"


def test_extra_fields(cap: Capture) -> None:
    cap.logger.info(
        "call", extra={"model": "llama", "tokens": 42, "nested": {"a": [1, 2]}, "ok": True}
    )
    entry = cap.last()
    assert entry["model"] == "llama"
    assert entry["tokens"] == 42
    assert entry["nested"] == {"a": [1, 2]}
    assert entry["ok"] is True
    # Standard LogRecord attributes are not dumped.
    for internal in ("args", "msg", "levelno", "pathname", "lineno", "exc_info", "thread"):
        assert internal not in entry


def test_non_json_extras_are_stringified(cap: Capture) -> None:
    cap.logger.info("x", extra={"when": datetime(2024, 1, 2, tzinfo=UTC), "obj": object()})
    entry = cap.last()
    assert entry["when"].startswith("2024-01-02")
    assert entry["obj"].startswith("<object object")


KEY = generate_key()

SECRETS = [
    pytest.param(f"using key {KEY} now", KEY, id="ais-key"),
    pytest.param("openai sk-abcdefghijklmnopqrstuvwx done", "sk-abcdefghijklmnopqrstuvwx", id="sk"),
    pytest.param("header Bearer xyz123token here", "xyz123token", id="bearer"),
    pytest.param("Authorization: xyz123token", "xyz123token", id="authorization"),
    pytest.param("authorization=xyz123token", "xyz123token", id="authorization-eq"),
    pytest.param("url?api_key=s3cr3tvalue&x=1", "s3cr3tvalue", id="api_key"),
    pytest.param("api-key: s3cr3tvalue", "s3cr3tvalue", id="api-key"),
    pytest.param('{"x-api-key": "s3cr3tvalue"}', "s3cr3tvalue", id="x-api-key-json"),
    pytest.param(f"token_{KEY}", KEY, id="key-glued-to-word"),
    pytest.param(f"é{KEY}", KEY, id="key-after-unicode-letter"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_redact(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert REDACTED in out


def test_redact_keeps_bearer_word_and_plain_text() -> None:
    assert redact("Bearer abcdef") == f"Bearer {REDACTED}"
    assert redact("nothing secret here: sk-short") == "nothing secret here: sk-short"
    assert redact("the task-management module") == "the task-management module"


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_secret_redacted_in_message_and_args(cap: Capture, text: str, secret: str) -> None:
    cap.logger.info(text)
    cap.logger.info("formatted: %s", text)
    output = cap.stream.getvalue()
    assert secret not in output
    assert all(REDACTED in e["message"] for e in cap.entries())


def test_secret_redacted_in_extras(cap: Capture) -> None:
    cap.logger.info(
        "request",
        extra={
            "key": KEY,
            "headers": {"Authorization": "plainsecret1", "x-api-key": "plainsecret2"},
            "auth": "Bearer plainsecret3",
            "keys": [KEY, ("nested", f"api_key={KEY}")],
        },
    )
    output = cap.stream.getvalue()
    for secret in (KEY, "plainsecret1", "plainsecret2", "plainsecret3"):
        assert secret not in output
    entry = cap.last()
    assert entry["key"] == REDACTED
    assert entry["headers"] == {"Authorization": REDACTED, "x-api-key": REDACTED}


def test_secret_redacted_in_exception_text(cap: Capture) -> None:
    try:
        raise ValueError(f"upstream refused key {KEY} with Authorization: Bearer abc.def")
    except ValueError:
        cap.logger.exception("call failed")
    output = cap.stream.getvalue()
    assert KEY not in output
    assert "abc.def" not in output
    entry = cap.last()
    assert entry["level"] == "ERROR"
    assert "ValueError" in entry["exception"]
    assert "Traceback" in entry["exception"]
    assert len(cap.lines()) == 1  # the traceback stays inside one JSON line


@given(key=st.builds(generate_key), before=st.text(), after=st.text())
def test_generated_keys_never_reach_the_output(key: str, before: str, after: str) -> None:
    text = before + key + after
    assert key not in _format(text)
    assert key not in _format("%s", args=(text,))
    assert key not in _format("x", details={"text": text, "list": [text]})
    assert key not in redact(text)


# The four patterns as they ran on every string before the fast path (issue 16): the
# fast path must never change what they redact.
_REFERENCE_PATTERNS = (
    re.compile(r"ais_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]+"),
    re.compile(r"(?i)(authorization|api[_-]?key|x-api-key)([\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
)


def reference_redact(text: str) -> str:
    text = _REFERENCE_PATTERNS[0].sub(REDACTED, text)
    text = _REFERENCE_PATTERNS[1].sub(REDACTED, text)
    text = _REFERENCE_PATTERNS[2].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _REFERENCE_PATTERNS[3].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


# Pieces of the patterns, in odd cases and with the characters re.IGNORECASE matches
# although str.lower() keeps them apart (dotless i, long s, Kelvin sign, dotted capital I).
_FRAGMENTS = st.sampled_from(
    [
        "ais_",
        "AIS_",
        "sk-",
        "SK-",
        "bearer ",
        "BeArEr\t",
        "Authorization",
        "authorızation",
        "AUTHORİZATION",
        "apı_key",
        "API-KEY",
        "x-api-key",
        "ApiKey",
        ": ",
        "=",
        "'",
        '"',
        "abcdefgh12345678",
        "ſk-",
        "\u212a",
        " ",
        "_",
        "-",
        ",",
        "}",
        "é",
    ]
)


@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=5)), max_size=12).map("".join))
def test_fast_path_redacts_exactly_what_the_patterns_do(text: str) -> None:
    assert redact(text) == reference_redact(text)


@pytest.mark.parametrize(
    "text",
    ["apı_key=s3cr3tvalue", "AUTHORİZATION: s3cr3tvalue", "authorızation=s3cr3tvalue"],
    ids=["dotless-i", "dotted-capital-i", "dotless-i-authorization"],
)
def test_non_ascii_spellings_are_still_redacted(text: str) -> None:
    assert "s3cr3tvalue" not in redact(text)
    assert redact(text) == reference_redact(text)


def test_plain_text_is_returned_unchanged() -> None:
    for text in ("GET /v1/backends 200", "0123456789abcdef0123456789abcdef", "bench-user", ""):
        assert redact(text) is text


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx")
    saved = {
        name: (
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).propagate,
            logging.getLogger(name).disabled,
            logging.getLogger(name).level,
        )
        for name in names
    }
    yield
    root.handlers[:] = saved_root[0]
    root.setLevel(saved_root[1])
    for name, (handlers, propagate, disabled, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.disabled = disabled
        logger.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_writes_json_lines_to_the_stream() -> None:
    stream = io.StringIO()
    configure_logging("gateway", "DEBUG", stream=stream)
    root = logging.getLogger()
    assert root.level == logging.DEBUG
    assert len(root.handlers) == 1
    assert isinstance(root.handlers[0].formatter, JsonFormatter)

    logging.getLogger("some.module").debug("hello %s", KEY)
    logging.getLogger("uvicorn.error").warning("server warning")
    logging.getLogger("uvicorn.access").warning("access line is dropped")
    logging.getLogger("httpx").info("httpx chatter is dropped")

    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["message"] for e in entries] == [f"hello {REDACTED}", "server warning"]
    assert all(e["service"] == "gateway" for e in entries)
    assert entries[0]["level"] == "DEBUG"
    assert entries[0]["logger"] == "some.module"
    assert logging.getLogger("uvicorn.error").propagate is True
    assert logging.getLogger("uvicorn").handlers == []


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_twice_does_not_duplicate_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("svc", "INFO", stream=first)
    configure_logging("svc", "INFO", stream=second)
    logging.getLogger("x").info("once")
    logging.getLogger("x").debug("below level")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1
