"""Per-request context (request id, user, route) carried by contextvars.

Logging, outgoing HTTP clients and audit writes read these, so handlers never
have to thread the request id through every call.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_var: ContextVar[str | None] = ContextVar("user", default=None)
route_var: ContextVar[str | None] = ContextVar("route", default=None)

# Accept caller ids only when they are short and printable, so a hostile header
# cannot inject log lines or blow up label/log sizes.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(header_value: str | None) -> str:
    """Return the caller's request id when it is well-formed, otherwise a new one."""
    if header_value and _VALID_REQUEST_ID.fullmatch(header_value):
        return header_value
    return new_request_id()
