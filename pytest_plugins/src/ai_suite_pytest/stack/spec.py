"""The declarative description of a stack of services.

A stack file (YAML) names each service once: how to run it (a command for the
local backend, a Compose service for the compose backend), its environment,
its readiness probe and what it depends on. Values may refer to the run:
``{python}`` (this interpreter), ``{port}`` (the service's own port),
``{port:NAME}`` / ``{url:NAME}`` (another service's), ``{data_dir}`` (the
stack's data directory, shared by its services) and ``{root}`` (the stack file's folder).

A service marked ``optional: true`` may be missing: if it exits during start-up, never
becomes ready, or has nothing to run it on the chosen backend, the rest of the stack
still starts and the service is *unavailable* (with the reason). What depends on it is
unavailable too, so it must be optional as well (checked here).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

_PLACEHOLDER = re.compile(r"\{(python|root|data_dir|port|port:[a-z0-9_-]+|url:[a-z0-9_-]+)\}")


class StackSpecError(ValueError):
    """The stack file is invalid; the message names the file and the problem."""


class Readiness(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    http: str = Field(default="/health", description="Path that answers 200 when ready.")
    timeout: float = Field(default=30.0, gt=0)


class ServiceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    command: list[str] | None = None
    compose_service: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    ready: Readiness = Field(default_factory=Readiness)
    depends_on: list[str] = Field(default_factory=list)
    optional: bool = False

    @field_validator("optional", mode="before")
    @classmethod
    def _strict_optional(cls, value: object) -> object:
        # Only YAML's true/false: pydantic would also take "yes", "off" or 0, and a typo
        # such as `optional: ture` must not quietly make a service required.
        if not isinstance(value, bool):
            raise ValueError(
                f"must be true or false, not {value!r}; `optional: true` lets the stack start"
                " without this service (its tests are skipped with the reason)"
            )
        return value

    def runner(self, backend: str) -> str | None:
        """What runs this service on ``backend`` (its command or Compose service)."""
        if backend == "compose":
            return self.compose_service
        return " ".join(self.command) if self.command else None


class StackSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(default="stack", pattern=r"^[a-z0-9_-]+$")
    compose_files: list[str] = Field(default_factory=list)
    workdir: str = Field(default=".", description="Commands run here (relative to the file).")
    services: list[ServiceSpec]
    root: Path = Path()

    @model_validator(mode="after")
    def _check(self) -> StackSpec:
        names = [s.name for s in self.services]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"service names must be unique; repeated: {', '.join(dupes)}")
        known = set(names)
        for service in self.services:
            missing = [d for d in service.depends_on if d not in known]
            if missing:
                raise ValueError(f"service {service.name!r} depends on unknown {missing}")
        by_name = {s.name: s for s in self.services}
        for service in self.services:
            optional_deps = [d for d in service.depends_on if by_name[d].optional]
            if optional_deps and not service.optional:
                raise ValueError(
                    f"service {service.name!r} depends on optional {optional_deps}, so it is"
                    f" unavailable whenever they are: add `optional: true` to {service.name!r}"
                )
        self.start_order()  # raises on cycles
        return self

    @property
    def cwd(self) -> Path:
        return (self.root / self.workdir).resolve()

    def service(self, name: str) -> ServiceSpec:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(f"no service {name!r} in stack {self.name!r}; have {self.names()}")

    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def start_order(self, only: list[str] | None = None) -> list[ServiceSpec]:
        """Services in dependency order; with ``only``, those and what they need."""
        order: list[ServiceSpec] = []
        state: dict[str, str] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                raise ValueError("dependency cycle: " + " -> ".join((*path, name)))
            state[name] = "visiting"
            spec = self.service(name)
            for dep in spec.depends_on:
                visit(dep, (*path, name))
            state[name] = "done"
            order.append(spec)

        for name in only if only is not None else self.names():
            visit(name, ())
        return order

    def requiring(self, names: list[str]) -> StackSpec:
        """This stack with ``names`` and what they depend on made required (not optional):
        a run that must prove them (CI) fails instead of skipping when they cannot start."""
        unknown = [n for n in names if n not in self.names()]
        if unknown:
            raise StackSpecError(
                f"cannot require {unknown}: stack {self.name!r} has no such service;"
                f" it has {self.names()}"
            )
        required = {s.name for s in self.start_order(names)} if names else set()
        services = [
            s.model_copy(update={"optional": False}) if s.name in required else s
            for s in self.services
        ]
        return self.model_copy(update={"services": services})

    def without_runner(self, backend: str) -> dict[str, str]:
        """Optional services ``backend`` cannot run (no command, no Compose service), and
        what depends on them, each with the reason it is unavailable."""
        field = "compose_service" if backend == "compose" else "command"
        out: dict[str, str] = {}
        for service in self.start_order():
            if not service.optional:
                continue
            if service.runner(backend) is None:
                out[service.name] = (
                    f"optional service {service.name!r} has no {field!r} in the stack file,"
                    f" so the {backend} backend cannot run it"
                )
                continue
            blocked = next((d for d in service.depends_on if d in out), None)
            if blocked is not None:
                out[service.name] = f"{service.name!r} depends on {blocked!r}: {out[blocked]}"
        return out

    def fingerprint(self) -> str:
        """Changes whenever anything that affects how the stack runs changes."""
        payload = self.model_dump(mode="json", exclude={"root"})
        files = {
            f: hashlib.sha256((self.root / f).read_bytes()).hexdigest()
            for f in self.compose_files
            if (self.root / f).exists()
        }
        blob = json.dumps({"spec": payload, "files": files}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_stack(path: Path) -> StackSpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StackSpecError(f"stack file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise StackSpecError(f"stack file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
        raise StackSpecError(f"stack file {path}: expected a mapping with a 'services' mapping")
    services = [{"name": name, **(body or {})} for name, body in raw["services"].items()]
    try:
        return StackSpec(**{**raw, "services": services, "root": path.parent.resolve()})
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join(filter(None, [_where(err["loc"], services), err["msg"]])).replace(
                "Value error, ", ""
            )
            for err in exc.errors()
        )
        raise StackSpecError(f"stack file {path}: {problems}") from None


def _where(loc: tuple[int | str, ...], services: list[dict[str, Any]]) -> str:
    """The key path as written in the file: ``services.llama.optional``, not ``services.3``."""
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] == "services" and isinstance(loc[1], int):
        parts[1] = str(services[loc[1]].get("name", loc[1]))
    return ".".join(parts)


def render(value: str, *, context: Mapping[str, Any]) -> str:
    """Fill the placeholders of one value; an unknown service name is an error."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "python":
            return sys.executable
        if key in context:
            return str(context[key])
        raise StackSpecError(f"placeholder {{{key}}} refers to something not in the stack")

    return _PLACEHOLDER.sub(fill, value)
