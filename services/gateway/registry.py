"""Model registry: which model aliases exist and which backends serve them.

Loaded from a YAML file, or built from a single inference URL for the one-backend setup::

    backends:
      - name: llamacpp                    # unique, [a-z0-9_-]+
        url: http://127.0.0.1:8001/v1     # OpenAI-compatible base URL (http/https)
        api_key_env: null                 # optional: env var holding the upstream's key
    models:
      - name: chat                        # alias clients send as "model"
        kind: chat                        # chat | code (used by model "auto")
        upstream_model: qwen2.5-7b-instruct   # optional; default: same as name
        backends: [llamacpp, ollama]      # fallback order; at least one
    default_model_for: {chat: chat, code: code}   # optional; default: first of that kind
    passthrough_backend: llamacpp         # optional; unknown model names go here unchanged

Every mistake in the file is reported at once, each naming the file and the key path
(``models[1].backends``) with the offending value, so a bad config fails at startup with
a message the operator can act on rather than at the first request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.core.yamlfile import safe_load
from services.gateway.selection import ModelKind

# The model name that asks the gateway to choose (see services.gateway.selection).
AUTO_MODEL = "auto"
# Name of the only backend of a registry built from an inference URL.
DEFAULT_BACKEND = "default"

_ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RegistryError(ValueError):
    """The registry configuration is invalid; the message says where and why."""


class _Strict(BaseModel):
    # Unknown keys are errors: a typo such as "backend:" must not silently be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backend(_Strict):
    """An OpenAI-compatible upstream server."""

    name: str = Field(pattern=r"^[a-z0-9_-]+$", max_length=64)
    url: str
    api_key_env: str | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        # Stripped so that callers can append "/chat/completions" without doubling slashes.
        return url.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _check_env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_VAR_NAME.fullmatch(name):
            raise ValueError("must be an environment variable name")
        return name

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The upstream API key, read at call time so that key rotation needs no reload."""
        if self.api_key_env is None:
            return None
        return (os.environ if environ is None else environ).get(self.api_key_env) or None


class ModelEntry(_Strict):
    """A model alias clients can ask for."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^\S+$")
    kind: ModelKind = ModelKind.CHAT
    upstream_model: str = Field(min_length=1, max_length=200)
    backends: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _default_upstream(cls, data: Any) -> Any:
        # "upstream_model" defaults to the alias; filled in before validation so that the
        # field can be a plain str afterwards.
        if isinstance(data, Mapping) and data.get("upstream_model") is None and "name" in data:
            return {**data, "upstream_model": data["name"]}
        return data

    @field_validator("name")
    @classmethod
    def _not_auto(cls, name: str) -> str:
        if name == AUTO_MODEL:
            raise ValueError(f"{AUTO_MODEL!r} is reserved for automatic model selection")
        return name

    @field_validator("backends")
    @classmethod
    def _no_repeats(cls, backends: list[str]) -> list[str]:
        repeated = _duplicates(backends)
        if repeated:
            raise ValueError(f"backend listed more than once: {', '.join(repeated)}")
        return backends


@dataclass(frozen=True)
class ResolvedModel:
    """Where to send a request for one model name."""

    alias: str  # the name the client asked for
    upstream_model: str  # the name to put in the upstream request
    backends: tuple[Backend, ...]  # in fallback order, never empty
    kind: ModelKind | None = None  # None for passthrough: the gateway knows nothing of it
    passthrough: bool = False


class ModelRegistry(_Strict):
    """The validated registry. Build with :func:`load_registry` or :meth:`empty`."""

    backends: list[Backend] = Field(default_factory=list)
    models: list[ModelEntry] = Field(default_factory=list)
    default_model_for: dict[ModelKind, str] = Field(default_factory=dict)
    passthrough_backend: str | None = None

    @model_validator(mode="after")
    def _check_references(self) -> ModelRegistry:
        # Cross-references are checked here, after the fields, and each message starts
        # with the key path because pydantic reports model-level errors without one.
        problems = []
        backend_names = [b.name for b in self.backends]
        model_names = [m.name for m in self.models]
        for name in _duplicates(backend_names):
            problems.append(f"backends: duplicate name {name!r}")
        for name in _duplicates(model_names):
            problems.append(f"models: duplicate name {name!r}")
        known = set(backend_names)
        for i, model in enumerate(self.models):
            for ref in model.backends:
                if ref not in known:
                    problems.append(f"models[{i}].backends: unknown backend {ref!r}{_known(known)}")
        for kind, alias in self.default_model_for.items():
            if alias not in model_names:
                problems.append(
                    f"default_model_for.{kind}: unknown model {alias!r}{_known(model_names)}"
                )
        if self.passthrough_backend is not None and self.passthrough_backend not in known:
            problems.append(
                f"passthrough_backend: unknown backend {self.passthrough_backend!r}"
                f"{_known(known)}"
            )
        if problems:
            # One problem per line, matching the layout of _describe's report.
            raise ValueError("\n  - ".join(problems))
        return self

    @classmethod
    def empty(cls) -> ModelRegistry:
        """No backends and no models: every model name is unknown."""
        return cls()

    def backend(self, name: str) -> Backend:
        """The backend called ``name``; KeyError if there is none."""
        for backend in self.backends:
            if backend.name == name:
                return backend
        raise KeyError(name)

    def list_models(self) -> list[ModelEntry]:
        """The configured aliases, in file order (what ``GET /v1/models`` lists)."""
        return list(self.models)

    def resolve(self, name: str) -> ResolvedModel | None:
        """Route an explicit model name; None if unknown and there is no passthrough.

        ``"auto"`` is not special here: callers classify the prompt and use
        :meth:`resolve_auto` for it.
        """
        for model in self.models:
            if model.name == name:
                return self._resolved(model)
        if self.passthrough_backend is None:
            return None
        return ResolvedModel(
            alias=name,
            upstream_model=name,
            backends=(self.backend(self.passthrough_backend),),
            passthrough=True,
        )

    def resolve_auto(self, kind: ModelKind) -> ResolvedModel | None:
        """The model ``"auto"`` uses for a prompt of ``kind``; None if there are no models.

        Preference: ``default_model_for[kind]``, else the first model of that kind. If no
        model has that kind, the chat default, then the first model: a registry without a
        code model should still answer code questions rather than fail.
        """
        for candidate in (kind, ModelKind.CHAT):
            model = self._default_for(candidate)
            if model is not None:
                return self._resolved(model)
        return self._resolved(self.models[0]) if self.models else None

    def _default_for(self, kind: ModelKind) -> ModelEntry | None:
        alias = self.default_model_for.get(kind)
        if alias is not None:
            return next(model for model in self.models if model.name == alias)
        # == rather than "is": callers may pass the plain string "code".
        return next((model for model in self.models if model.kind == kind), None)

    def _resolved(self, model: ModelEntry) -> ResolvedModel:
        return ResolvedModel(
            alias=model.name,
            upstream_model=model.upstream_model,
            backends=tuple(self.backend(name) for name in model.backends),
            kind=model.kind,
        )


def load_registry(
    path: Path | None,
    inference_url: str | None,
    *,
    chat_model: str | None = None,
    code_model: str | None = None,
) -> ModelRegistry:
    """Load the registry file at ``path``; else build one from ``inference_url``; else empty.

    The file wins when both are given. From a URL alone, the registry has one backend
    named ``default``, models ``chat`` and ``code`` on it, and passes unknown model names
    through to it, so any model the server has can still be requested by its own name.
    ``chat_model``/``code_model`` (INFERENCE_CHAT_MODEL/INFERENCE_CODE_MODEL) are the
    upstream names of the two aliases; when unset the alias stands in until
    :mod:`services.gateway.discovery` replaces it with a name the server lists.
    Raises :class:`RegistryError` for an unreadable or invalid configuration.
    """
    if path is not None:
        return _load_file(path)
    if inference_url is not None:
        return _from_url(inference_url, chat_model, code_model)
    return ModelRegistry.empty()


def _load_file(path: Path) -> ModelRegistry:
    try:
        document = safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"model registry {path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RegistryError(f"model registry {path}: not UTF-8 text: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RegistryError(f"model registry {path}: invalid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise RegistryError(
            f"model registry {path}: expected a mapping with 'backends' and 'models', "
            f"got {type(document).__name__}"
        )
    try:
        return ModelRegistry.model_validate(document)
    except ValidationError as exc:
        raise RegistryError(_describe(f"model registry {path}", exc)) from exc


def _from_url(
    inference_url: str, chat_model: str | None = None, code_model: str | None = None
) -> ModelRegistry:
    try:
        backend = Backend(name=DEFAULT_BACKEND, url=inference_url)
    except ValidationError as exc:
        raise RegistryError(_describe("inference URL", exc)) from exc
    return ModelRegistry(
        backends=[backend],
        models=[
            ModelEntry(
                name="chat",
                kind=ModelKind.CHAT,
                upstream_model=chat_model,
                backends=[DEFAULT_BACKEND],
            ),
            ModelEntry(
                name="code",
                kind=ModelKind.CODE,
                upstream_model=code_model,
                backends=[DEFAULT_BACKEND],
            ),
        ],
        passthrough_backend=DEFAULT_BACKEND,
    )


def _describe(source: str, exc: ValidationError) -> str:
    lines = [f"{source} is invalid:"]
    for error in exc.errors(include_url=False):
        where = _location(error["loc"])
        if error["type"] == "value_error" and "error" in error.get("ctx", {}):
            # Our own validators: the message already says what is wrong, and for the
            # model-level check it already carries the key path.
            message = str(error["ctx"]["error"])
        else:
            message = error["msg"]
        if error["type"] != "missing" and where:
            message = f"{message} (got {_short(error['input'])})"
        lines.append(f"  - {where}: {message}" if where else f"  - {message}")
    return "\n".join(lines)


def _location(loc: Iterable[int | str]) -> str:
    # ("models", 1, "backends") -> "models[1].backends"
    # A bad mapping key is reported by pydantic as a trailing "[key]" part.
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += f".{part}" if out else part
    return out


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _duplicates(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def _known(names: Iterable[str]) -> str:
    listed = sorted(set(names))
    return f" (known: {', '.join(listed)})" if listed else " (none are defined)"
