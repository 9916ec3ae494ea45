"""JSON logs on stdout, one object per line, with secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

from services.core.context import request_id_var, route_var, user_var

# API keys of this platform, OpenAI-style keys and bearer credentials.
# No word boundary before ``ais_``: a key glued to a preceding letter, digit or
# underscore ("token_ais_...", "éais_...") must be redacted too.
_SECRET_PATTERNS = (
    re.compile(r"ais_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]+"),
    re.compile(r"(?i)(authorization|api[_-]?key|x-api-key)([\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
)
REDACTED = "[REDACTED]"

# Attributes every LogRecord has; anything else passed via ``extra=`` is emitted.
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_CONTEXT_FIELDS = ("user", "route", "status", "duration_ms")
# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


# Every pattern above needs one of these words (in any case): ``ais_``, ``sk-``,
# ``bearer``, or ``api``/``authorization`` (the key names). Most log text (routes,
# methods, request ids, user names) has none, and looking for them is several times
# cheaper than running the patterns (the access log of a light request redacts five
# strings).


def redact(text: str) -> str:
    """Replace anything that looks like a credential with ``[REDACTED]``."""
    # Only for ASCII text: with re.IGNORECASE, "ı" (dotless i) matches "i" and "ſ" matches
    # "s", which str.lower() does not map; any other text goes through the patterns.
    if text.isascii():
        lowered = text.lower()
        if (  # spelled out: a loop over a tuple costs more than the five tests
            "ais_" not in lowered
            and "sk-" not in lowered
            and "bearer" not in lowered
            and "api" not in lowered
            and "authorization" not in lowered
        ):
            return text
    text = _SECRET_PATTERNS[0].sub(REDACTED, text)
    text = _SECRET_PATTERNS[1].sub(REDACTED, text)
    text = _SECRET_PATTERNS[2].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _SECRET_PATTERNS[3].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


# Mapping keys whose whole value is a credential, e.g. a headers dict in ``extra=``.
_SECRET_KEY = re.compile(r"(?i)^(authorization|api[_-]?key|x-api-key)$")


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.match(k) else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with the platform's common fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": _redact_value(
                getattr(record, "request_id", None) or request_id_var.get()
            ),
        }
        context = {"user": user_var.get(), "route": route_var.get()}
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name)
            if value is not None:
                entry[name] = value
        attributes = vars(record)
        # The set difference runs in C; most records have a handful of extras or none.
        for key in sorted(attributes.keys() - _RESERVED - entry.keys()):
            entry[key] = _redact_value(attributes[key])
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return _ENCODER.encode(entry)


def configure_logging(service: str, level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send every logger's output to ``stream`` (stdout) as JSON lines.

    Called once by a service's process entry point, never by ``create_app``, so
    that building apps in tests does not reconfigure the test runner's logging.
    """
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own handlers; route them through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs requests
    logging.getLogger("httpx").setLevel(logging.WARNING)
