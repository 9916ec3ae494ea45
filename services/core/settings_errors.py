"""A bad setting stops a program with one line per bad variable, never a traceback.

pydantic's ``ValidationError`` names the variable at the very end of a long report;
:class:`InvalidSettings` (raised by every settings class) turns it into lines such as
``GATEWAY_PORT='abc' is not valid: expected an integer (0-65535)``, and
:func:`exit_on_invalid_settings` is the one place that prints them and exits: the
``ai-suite`` entry point and every ``python -m services.<name>`` use it.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic.fields import FieldInfo

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

# A usage error, as click's own (a bad option) exits.
EXIT_INVALID_SETTINGS = 2
_VALUE_ERROR_PREFIXES = ("Value error, ", "Assertion failed, ")


def env_names(field_name: str, field: FieldInfo) -> list[str]:
    """The environment variables a field is read from, the documented one first."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias]
    return [field_name.upper()]


def expected(field: FieldInfo) -> str:
    """What a field accepts, in words: ``an integer (0-65535)``, ``one of dense, hybrid``."""
    annotation = _without_none(field.annotation)
    if get_origin(annotation) is Literal:
        words = "one of " + ", ".join(str(choice) for choice in get_args(annotation))
    else:
        words = _TYPE_WORDS.get(annotation, "a value")
    bounds = _bounds(field)
    return f"{words} ({bounds})" if bounds else words


_TYPE_WORDS: dict[Any, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false (also 1/0, yes/no, on/off)",
    str: "text",
    SecretStr: "text",
    Path: "a path",
}


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        others = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(others) == 1:
            return others[0]
    return annotation


def _bounds(field: FieldInfo) -> str:
    low = high = None
    low_open = high_open = False
    min_length = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            low, low_open = item.gt, True
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.Lt):
            high, high_open = item.lt, True
        elif isinstance(item, annotated_types.MinLen):
            min_length = item.min_length
    if min_length:
        return "not empty" if min_length == 1 else f"at least {min_length} characters"
    if low is not None and high is not None and not low_open and not high_open:
        return f"{low}-{high}" if low >= 0 else f"{low} to {high}"
    parts = []
    if low is not None:
        parts.append(f"above {low}" if low_open else f"at least {low}")
    if high is not None:
        parts.append(f"below {high}" if high_open else f"at most {high}")
    return ", ".join(parts)


def _field_for(settings_cls: type[BaseSettings], key: str) -> tuple[str, FieldInfo] | None:
    wanted = key.lower()
    for name, field in settings_cls.model_fields.items():
        if wanted == name.lower() or wanted in (env.lower() for env in env_names(name, field)):
            return name, field
    return None


def _where(variable: str) -> str:
    """`` (from PATH)`` when the value came from a .env file rather than the environment."""
    from services.core.settings import dotenv_value, env_files, environ_value

    if environ_value(variable) is not None:
        return ""
    for path in reversed(env_files()):  # the file that wins first
        if dotenv_value(path, variable) is not None:
            return f" (from {path.resolve()})"
    return ""


def describe(settings_cls: type[BaseSettings], error: Any) -> str:
    """One line for one of pydantic's error dicts."""
    message = str(error.get("msg", "invalid"))
    for prefix in _VALUE_ERROR_PREFIXES:
        message = message.removeprefix(prefix)
    loc = error.get("loc") or ()
    found = _field_for(settings_cls, str(loc[0])) if loc else None
    if found is None:
        return f"invalid configuration: {message}"
    name, field = found
    variable = env_names(name, field)[0]
    secret = _without_none(field.annotation) is SecretStr
    value = "(value hidden)" if secret else f"={error.get('input')!r}"
    if error.get("type") in ("value_error", "assertion_error"):
        reason = message
    else:
        reason = f"expected {expected(field)}"
    separator = " " if secret else ""
    return f"{variable}{separator}{value} is not valid: {reason}{_where(variable)}"


class InvalidSettings(ValueError):
    """Settings that failed validation, as one line per problem (``lines``)."""

    def __init__(self, settings_cls: type[BaseSettings], error: ValidationError) -> None:
        self.settings_cls = settings_cls
        self.lines = [describe(settings_cls, item) for item in error.errors(include_url=False)]
        super().__init__("\n".join(self.lines))


@contextmanager
def exit_on_invalid_settings(program: str) -> Iterator[None]:
    """Run the body; invalid settings print ``program: <line>`` to stderr and exit 2."""
    try:
        yield
    except InvalidSettings as exc:
        for line in exc.lines:
            print(f"{program}: {line}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID_SETTINGS) from None
