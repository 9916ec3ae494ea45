"""The declarative description of a stack of services.

A stack file (YAML) names each service once: how to run it (a command for the
local backend, a Compose service for the compose backend), its environment,
its port, its readiness check and what it depends on. Values may refer to the run:
``{python}`` (this interpreter), ``{port}`` (the service's own port),
``{port:NAME}`` / ``{url:NAME}`` (another service's), ``{host}`` (the service's host),
``{data_dir}`` (the stack's data directory, shared by its services) and ``{root}``
(the stack file's folder).

A service marked ``optional: true`` may be missing: if it exits during start-up, never
becomes ready, or has nothing to run it on the chosen backend, the rest of the stack
still starts and the service is *unavailable* (with the reason). What depends on it is
unavailable too, so it must be optional as well (checked here).

Validation is plain Python, with no validation library: adopters install this package,
and every dependency it brings is theirs to carry. Every problem names the file, the key path
as written (``services.api.ready.status``), the value and what to write instead; all
problems of a file are reported at once.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^[a-z0-9_-]+$")
_KNOWN = r"python|root|data_dir|host|port|port:[a-z0-9_-]+|url:[a-z0-9_-]+"
_PLACEHOLDER = re.compile(r"\{(" + _KNOWN + r")\}")
# Anything that looks like it was meant as a placeholder: `{url:API}` or `{port:}` must
# not be passed through literally (it would surface as a confusing error in the service).
_REFERENCE = re.compile(r"\{(url|port):([^{}]*)\}")
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")

READY_KINDS = ("http", "tcp", "command", "log")
SCHEMES = ("http", "https")
DEFAULT_TIMEOUT = 30.0
DEFAULT_HOST = "127.0.0.1"

_TOP_KEYS = ("name", "workdir", "compose_files", "services", "fingerprint")
_SERVICE_KEYS = (
    "command",
    "compose_service",
    "env",
    "ready",
    "depends_on",
    "optional",
    "port",
    "scheme",
    "host",
)


class StackSpecError(ValueError):
    """The stack file is invalid; the message names the file and the problem."""


@dataclass(frozen=True)
class Readiness:
    """How to tell that a service is ready.

    ``kind`` is ``http`` (GET ``http`` answers ``status``), ``tcp`` (its port accepts a
    connection), ``command`` (``command`` exits 0), ``log`` (a line of its output matches
    ``log``, a regular expression) or ``none`` (ready once started).
    """

    kind: str = "http"
    http: str = "/health"
    status: int = 200
    command: tuple[str, ...] = ()
    log: str = ""
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        """The check as the stack file says it, for error messages."""
        if self.kind == "http":
            return f"http check (GET {self.http} expecting {self.status})"
        if self.kind == "tcp":
            return "tcp check (connect to the port)"
        if self.kind == "command":
            return f"command check ({' '.join(self.command)} exiting 0)"
        if self.kind == "log":
            return f"log check (a line matching /{self.log}/)"
        return "no check"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: list[str] | None = None
    compose_service: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    ready: Readiness = field(default_factory=Readiness)
    depends_on: list[str] = field(default_factory=list)
    optional: bool = False
    # "auto" (a free port), "none" (no port), "8080" (pinned), "20000-20100" (a range).
    port: str = "auto"
    scheme: str = "http"
    host: str = DEFAULT_HOST

    @property
    def has_port(self) -> bool:
        return self.port != "none"

    def port_candidates(self) -> range | None:
        """The ports this service may use, or None for any free one (``auto``)."""
        if self.port in ("auto", "none"):
            return None
        low, _, high = self.port.partition("-")
        return range(int(low), int(high or low) + 1)

    def runner(self, backend: str) -> str | None:
        """What runs this service on ``backend`` (its command or Compose service)."""
        if backend == "compose":
            return self.compose_service
        return " ".join(self.command) if self.command else None


@dataclass(frozen=True)
class StackSpec:
    services: list[ServiceSpec]
    name: str = "stack"
    compose_files: list[str] = field(default_factory=list)
    workdir: str = "."
    # Globs (relative to the stack file's folder) of inputs whose change makes a kept
    # stack (--stack-keep) stale: the services' own code, their configuration.
    fingerprint_globs: list[str] = field(default_factory=list)
    root: Path = Path()

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

    def replace(self, **changes: Any) -> StackSpec:
        return dataclasses.replace(self, **changes)

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
            dataclasses.replace(s, optional=False) if s.name in required else s
            for s in self.services
        ]
        return self.replace(services=services)

    def without_runner(self, backend: str) -> dict[str, str]:
        """Optional services ``backend`` cannot run (no command, no Compose service), and
        what depends on them, each with the reason it is unavailable."""
        key = "compose_service" if backend == "compose" else "command"
        out: dict[str, str] = {}
        for service in self.start_order():
            if not service.optional:
                continue
            if service.runner(backend) is None:
                out[service.name] = (
                    f"optional service {service.name!r} has no {key!r} in the stack file,"
                    f" so the {backend} backend cannot run it"
                )
                continue
            blocked = next((d for d in service.depends_on if d in out), None)
            if blocked is not None:
                out[service.name] = f"{service.name!r} depends on {blocked!r}: {out[blocked]}"
        return out

    def fingerprint_files(self) -> list[Path]:
        """The files the ``fingerprint`` globs match, sorted."""
        found: set[Path] = set()
        for pattern in self.fingerprint_globs:
            for match in glob.glob(pattern, root_dir=self.root, recursive=True):
                path = self.root / match
                if path.is_file():
                    found.add(path)
        return sorted(found)

    def fingerprint(self) -> str:
        """Changes whenever anything that affects how the stack runs changes: the file's
        content, its Compose files and the files its ``fingerprint`` globs match."""
        payload = dataclasses.asdict(self)
        payload.pop("root")
        files = {
            f: hashlib.sha256((self.root / f).read_bytes()).hexdigest()
            for f in self.compose_files
            if (self.root / f).exists()
        }
        for path in self.fingerprint_files():
            files[str(path.relative_to(self.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        blob = json.dumps({"spec": payload, "files": files}, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# -- loading and validation ----------------------------------------------------------


class _Problems:
    """Collects every problem of a file, each as ``key.path: what is wrong; the fix``."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}" if where else message)


def load_stack(path: Path) -> StackSpec:
    import yaml  # here, not at import: a pytest run that uses no stack never pays for it

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StackSpecError(f"stack file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise StackSpecError(f"stack file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
        raise StackSpecError(f"stack file {path}: expected a mapping with a 'services' mapping")
    problems = _Problems()
    spec = _parse_stack(raw, path.parent.resolve(), problems)
    if not problems.items:
        _check_graph(spec, problems)
    if not problems.items:
        _check_placeholders(spec, problems)
    if problems.items:
        raise StackSpecError(f"stack file {path}: " + "; ".join(problems.items))
    return spec


def _unknown_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str, p: _Problems):
    for key in raw:
        if key not in allowed:
            prefix = f"{where}.{key}" if where else str(key)
            p.add(prefix, f"unknown key; allowed here: {', '.join(allowed)}")


def _str(value: Any, where: str, p: _Problems, what: str) -> str | None:
    if isinstance(value, str) and value:
        return value
    p.add(where, f"must be {what}, not {value!r}")
    return None


def _str_list(value: Any, where: str, p: _Problems, what: str) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    p.add(where, f"must be a list of strings ({what}), not {value!r}")
    return []


def _argv(value: Any, where: str, p: _Problems) -> list[str] | None:
    # Numbers are accepted and turned into strings: `[--port, 8080]` is what people write.
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value)
    ):
        return [str(v) for v in value]
    p.add(
        where,
        f"must be a non-empty list of strings (an argv, never run through a shell),"
        f' not {value!r}; for example ["{{python}}", -m, myapp, --port, "{{port}}"]',
    )
    return None


def _parse_stack(raw: dict[str, Any], root: Path, p: _Problems) -> StackSpec:
    _unknown_keys(raw, _TOP_KEYS, "", p)
    name = raw.get("name", "stack")
    if not isinstance(name, str) or not _NAME.match(name):
        p.add("name", f"must be lower-case letters, digits, '-' or '_', not {name!r}")
        name = "stack"
    workdir = _str(raw.get("workdir", "."), "workdir", p, "a folder relative to the file") or "."
    compose_files = _str_list(raw.get("compose_files", []), "compose_files", p, "Compose files")
    globs = _str_list(raw.get("fingerprint", []), "fingerprint", p, "file globs")
    for i, pattern in enumerate(globs):
        if not any(True for _ in _glob_files(root, pattern)):
            p.add(
                f"fingerprint[{i}]",
                f"{pattern!r} matches no file under {root}; fix the pattern (relative to the"
                " stack file's folder, `**` for any depth) or remove it",
            )
    services = []
    for service_name, body in raw["services"].items():
        where = f"services.{service_name}"
        if not isinstance(service_name, str) or not _NAME.match(service_name):
            p.add(where, "a service name must be lower-case letters, digits, '-' or '_'")
            continue
        if body is None:
            body = {}
        if not isinstance(body, dict):
            p.add(where, f"must be a mapping of the service's keys, not {body!r}")
            continue
        services.append(_parse_service(service_name, body, where, p))
    return StackSpec(
        services=services,
        name=name,
        compose_files=compose_files,
        workdir=workdir,
        fingerprint_globs=globs,
        root=root,
    )


def _glob_files(root: Path, pattern: str) -> Iterator[str]:
    for match in glob.iglob(pattern, root_dir=root, recursive=True):
        if (root / match).is_file():
            yield match


def _parse_service(name: str, body: dict[str, Any], where: str, p: _Problems) -> ServiceSpec:
    _unknown_keys(body, _SERVICE_KEYS, where, p)
    command = None
    if "command" in body:
        command = _argv(body["command"], f"{where}.command", p)
    compose_service = None
    if "compose_service" in body:
        compose_service = _str(
            body["compose_service"], f"{where}.compose_service", p, "a Compose service name"
        )
    env: dict[str, str] = {}
    raw_env = body.get("env", {}) or {}
    if not isinstance(raw_env, dict):
        p.add(f"{where}.env", f"must be a mapping of variable: value, not {raw_env!r}")
    else:
        for key, value in raw_env.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                p.add(
                    f"{where}.env.{key}",
                    f'must be a string, not {value!r}; quote it ("{value}")',
                )
            else:
                env[str(key)] = str(value)
    depends_on = _str_list(body.get("depends_on", []), f"{where}.depends_on", p, "service names")
    optional = body.get("optional", False)
    if not isinstance(optional, bool):
        # Only YAML's true/false: a typo such as `optional: ture` must not quietly make a
        # service required (or optional).
        p.add(
            f"{where}.optional",
            f"must be true or false, not {optional!r}; `optional: true` lets the stack start"
            " without this service (its tests are skipped with the reason)",
        )
        optional = False
    port = _parse_port(body.get("port", "auto"), f"{where}.port", p)
    scheme = body.get("scheme", "http")
    if scheme not in SCHEMES:
        p.add(f"{where}.scheme", f"must be one of {', '.join(SCHEMES)}, not {scheme!r}")
        scheme = "http"
    host = body.get("host", DEFAULT_HOST)
    if not isinstance(host, str) or not host or "/" in host or any(c.isspace() for c in host):
        p.add(
            f"{where}.host",
            f"must be a host name or IP address (no scheme, port or path), not {host!r};"
            f" default {DEFAULT_HOST}",
        )
        host = DEFAULT_HOST
    ready = _parse_ready(body.get("ready", {}), f"{where}.ready", port != "none", p)
    return ServiceSpec(
        name=name,
        command=command,
        compose_service=compose_service,
        env=env,
        ready=ready,
        depends_on=depends_on,
        optional=optional,
        port=port,
        scheme=scheme,
        host=host,
    )


def _parse_port(value: Any, where: str, p: _Problems) -> str:
    fix = 'write auto (a free port, the default), none (no port), 8080 or "20000-20100"'
    if value is None or value == "none":
        return "none"
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= 65535:
            return str(value)
        p.add(where, f"{value} is not a TCP port (1-65535); {fix}")
        return "auto"
    if isinstance(value, str):
        if value.isdigit():
            return _parse_port(int(value), where, p)
        match = _RANGE.match(value)
        if match:
            low, high = int(match[1]), int(match[2])
            if 1 <= low <= high <= 65535:
                return f"{low}-{high}"
            p.add(where, f"range {value!r} must be LOW-HIGH with 1 <= LOW <= HIGH <= 65535")
            return "auto"
    p.add(where, f"{value!r} is not a port; {fix}")
    return "auto"


def _parse_ready(value: Any, where: str, has_port: bool, p: _Problems) -> Readiness:
    kinds = ", ".join(READY_KINDS)
    if value is None or value == "none":
        return Readiness(kind="none")
    if not isinstance(value, dict):
        p.add(
            where,
            f"must be a mapping with one of {kinds} (e.g. {{tcp: true}}), or none; not {value!r}",
        )
        return Readiness()
    allowed = (*READY_KINDS, "status", "timeout")
    _unknown_keys(value, allowed, where, p)
    timeout = value.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        p.add(f"{where}.timeout", f"must be a number of seconds > 0, not {timeout!r}")
        timeout = DEFAULT_TIMEOUT
    given = [k for k in READY_KINDS if k in value]
    if len(given) > 1:
        p.add(where, f"has {' and '.join(given)}: give exactly one kind of check ({kinds})")
        return Readiness(timeout=float(timeout))
    kind = given[0] if given else "http"  # omitted: today's default, GET /health
    if "status" in value and kind != "http":
        p.add(f"{where}.status", f"only applies to an http check, not to {kind}")
    if kind in ("http", "tcp") and not has_port:
        p.add(
            where,
            f"a {kind} check needs a port, and this service has `port: none`; use"
            " {log: REGEX}, {command: [...]} or none",
        )
    if kind == "http":
        path = value.get("http", "/health")
        status = value.get("status", 200)
        if not isinstance(path, str) or not path.startswith("/"):
            p.add(f"{where}.http", f"must be a path starting with '/', not {path!r}")
            path = "/health"
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            p.add(f"{where}.status", f"must be an HTTP status (100-599), not {status!r}")
            status = 200
        return Readiness(kind="http", http=path, status=status, timeout=float(timeout))
    if kind == "tcp":
        if value["tcp"] is not True:
            p.add(f"{where}.tcp", f"must be true (connect to its port), not {value['tcp']!r}")
        return Readiness(kind="tcp", timeout=float(timeout))
    if kind == "command":
        argv = _argv(value["command"], f"{where}.command", p) or []
        return Readiness(kind="command", command=tuple(argv), timeout=float(timeout))
    pattern = value["log"]
    if not isinstance(pattern, str) or not pattern:
        p.add(f"{where}.log", f"must be a regular expression (a string), not {pattern!r}")
        pattern = "."
    else:
        try:
            re.compile(pattern)
        except re.error as exc:
            p.add(f"{where}.log", f"{pattern!r} is not a valid regular expression: {exc}")
            pattern = "."
    return Readiness(kind="log", log=pattern, timeout=float(timeout))


def _check_graph(spec: StackSpec, p: _Problems) -> None:
    names = spec.names()
    known = set(names)
    by_name = {s.name: s for s in spec.services}
    for service in spec.services:
        missing = [d for d in service.depends_on if d not in known]
        if missing:
            p.add(
                f"services.{service.name}.depends_on",
                f"service {service.name!r} depends on unknown {missing}; the stack has {names}",
            )
    if p.items:
        return
    for service in spec.services:
        optional_deps = [d for d in service.depends_on if by_name[d].optional]
        if optional_deps and not service.optional:
            p.add(
                f"services.{service.name}",
                f"service {service.name!r} depends on optional {optional_deps}, so it is"
                f" unavailable whenever they are: add `optional: true` to {service.name!r}",
            )
    try:
        spec.start_order()
    except ValueError as exc:
        p.add("services", str(exc))


def _values(service: ServiceSpec) -> Iterator[tuple[str, str]]:
    """Every value of ``service`` that placeholders are filled in, with its key path."""
    where = f"services.{service.name}"
    for i, part in enumerate(service.command or []):
        yield f"{where}.command[{i}]", part
    for key, value in service.env.items():
        yield f"{where}.env.{key}", value
    for i, part in enumerate(service.ready.command):
        yield f"{where}.ready.command[{i}]", part


def _check_placeholders(spec: StackSpec, p: _Problems) -> None:
    """Refuse, before anything starts, placeholders that cannot be filled in."""
    by_name = {s.name: s for s in spec.services}
    for service in spec.services:
        for where, value in _values(service):
            if "{port}" in value and not service.has_port:
                p.add(
                    where,
                    f"{value!r} uses {{port}}, but {service.name!r} has `port: none`;"
                    " remove `port: none` or the placeholder",
                )
            for match in _REFERENCE.finditer(value):
                kind, other = match[1], match[2]
                target = by_name.get(other)
                if target is None:
                    p.add(
                        where,
                        f"{match[0]!r} names no service of this stack; it has"
                        f" {', '.join(spec.names())}",
                    )
                elif not target.has_port:
                    p.add(
                        where,
                        f"{match[0]!r}: service {other!r} has `port: none`, so it has no"
                        f" {kind}; give it a port or drop the placeholder",
                    )


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


def url_of(service: ServiceSpec, port: int) -> str:
    host = f"[{service.host}]" if ":" in service.host else service.host
    return f"{service.scheme}://{host}:{port}"
