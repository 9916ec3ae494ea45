"""The compose backend: the stack's services as Docker Compose v2 services.

The same interface as :class:`~ai_suite_pytest.stack.local.LocalBackend`. Each
stack service names its Compose service (``compose_service``); the Compose files
come from the stack file (``compose_files``). Every run gets its own Compose
project name, recorded in the state file *before* ``docker compose up``, so the
sweep and the reaper can ``docker compose -p NAME down --volumes`` what a killed
run left behind (testcontainers' Ryuk reaper does not cover Compose projects).

Conventions the Compose files follow (checked by tests/unit/stack):

* a service's host port is ``127.0.0.1:${<SERVICE>_PORT:-default}:<container port>``
  (``<SERVICE>`` is the Compose service name upper-cased, ``-`` as ``_``); the
  backend sets it to a free port, so ``url(name)`` is stable across restarts;
* ``AI_SUITE_DATA_DIR`` is the host directory mounted as the services' data
  directory; the backend points it at ``data_dir`` so tests can read and reset it;
* ``AI_SUITE_UID``/``AI_SUITE_GID`` pick the user the services run as.

The Compose CLI is called directly (argv, no shell) rather than through
testcontainers' ``DockerCompose``, which cannot pass a per-stack environment or
project name (it runs every command with the process's own environment).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ai_suite_pytest.stack import docker_cli
from ai_suite_pytest.stack.backend import ServiceStartError, StackBackend
from ai_suite_pytest.stack.spec import ServiceSpec, StackSpec
from ai_suite_pytest.stack.state import StackState

# The user the image runs as (docker/Dockerfile APP_UID); data directories are given to it.
IMAGE_UID = 10001
_LOG_PREFIX = re.compile(r"^(?P<container>\S+?)-\d+\s+\| ?(?P<line>.*)$")


def _joined(error: Exception, details: str) -> str:
    return f"{error}\n{details}" if details else str(error)


def port_variable(compose_service: str) -> str:
    return compose_service.upper().replace("-", "_") + "_PORT"


def project_name(spec: StackSpec, state_dir: Path, token: str) -> str:
    """A Compose project name unique to this checkout, configuration and ``token``."""
    digest = hashlib.sha256(f"{state_dir.resolve()}|{spec.fingerprint()}|{token}".encode())
    return f"pytest-{spec.name}-{digest.hexdigest()[:10]}"


class ComposeBackend(StackBackend):
    name = "compose"
    # Whether the container is still up costs a `docker compose ps` call: asked at most
    # once a second, between HTTP probes 0.1 s apart.
    probe_interval = 0.1
    liveness_interval = 1.0

    def __init__(self, spec: StackSpec, run_dir: Path, state: StackState, state_file: Path):
        if not spec.compose_files:
            raise ServiceStartError(f"stack {spec.name!r} has no compose_files")
        if state.compose_project is None:
            raise ServiceStartError("the compose backend needs a project name in the state")
        super().__init__(spec, run_dir, state, state_file)

    def compose_service(self, name: str) -> str:
        service = self.spec.service(name)
        if not service.compose_service:
            raise ServiceStartError(
                f"{name}: no 'compose_service' in the stack file for the compose backend"
            )
        return service.compose_service

    # -- the compose CLI ---------------------------------------------------

    def _env(self) -> dict[str, str]:
        extra = {"AI_SUITE_DATA_DIR": str(self.data_dir)}
        for service in self.spec.services:
            if service.compose_service and service.name in self.state.ports:
                extra[port_variable(service.compose_service)] = str(self.state.ports[service.name])
        if os.getuid() != 0:
            # The services must write the bind-mounted data directory as its owner.
            extra["AI_SUITE_UID"], extra["AI_SUITE_GID"] = str(os.getuid()), str(os.getgid())
        return docker_cli.clean_env(extra)

    def _argv(self, *args: str) -> list[str]:
        argv = ["compose", "-p", str(self.state.compose_project)]
        for compose_file in self.spec.compose_files:
            argv += ["-f", str((self.spec.root / compose_file).resolve())]
        return [*argv, *args]

    def compose(self, *args: str, timeout: float = 300.0) -> str:
        result = docker_cli.run_docker(self._argv(*args), timeout=timeout, env=self._env())
        if result.returncode != 0:
            raise ServiceStartError(
                f"`docker compose {' '.join(args)}` failed (exit {result.returncode}):\n"
                + (result.stderr or result.stdout).strip()
            )
        return result.stdout

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            # Root on the host: the services run as the image's own non-root user.
            os.chown(self.data_dir, IMAGE_UID, IMAGE_UID)

    # -- lifecycle ---------------------------------------------------------

    def start_all(self, only: list[str] | None = None) -> None:
        """Required services in one ``up --wait``, then each optional one on its own.

        An optional service whose container cannot be created (its image is not built),
        exits, or never gets ready is removed and recorded as unavailable, like on the
        local backend; what depends on it is not started. Services already settled
        (running, unavailable, or stopped by a test) are left as they are.
        """
        self.assign_ports()
        self._prepare_data_dir()
        settled = self.state.settled()
        wanted = [s for s in self.spec.start_order(only) if s.name not in settled]
        required = [s for s in wanted if not s.optional]
        if required:
            self._record_started(required)  # recorded before `up`: nothing can leak
            self._up(required)
        for service in (s for s in wanted if s.optional):
            blocked = self.blocked_by(service)
            if blocked is not None:
                self.mark_unavailable(service.name, blocked)
                continue
            try:
                self.start(service.name)
            except ServiceStartError as exc:
                self._remove(service.name)
                self.mark_unavailable(service.name, f"optional service {exc}")

    def started(self) -> set[str]:
        return set(self.state.compose_services)

    def _record_started(self, services: list[ServiceSpec]) -> None:
        for service in services:
            self.state.compose_services[service.name] = self.compose_service(service.name)
        self.state.save(self.state_file)

    def _up(self, services: list[ServiceSpec]) -> None:
        timeout = max(s.ready.timeout for s in services)
        names = [self.compose_service(s.name) for s in services]
        try:
            self.compose(
                "up", "--detach", "--no-build", "--pull", "never", "--wait",
                "--wait-timeout", f"{int(timeout) + 1}", *names,
                timeout=timeout + 120,
            )  # fmt: skip
        except ServiceStartError as exc:
            raise ServiceStartError(_joined(exc, self._failure_details(services))) from None
        for service in services:
            self.wait_ready(service.name, timeout=service.ready.timeout)

    def _failure_details(self, services: list[ServiceSpec]) -> str:
        """Each service's container state, exit code and last log lines."""
        self.sync_logs()
        rows = docker_cli.project_containers(str(self.state.compose_project)) or []
        states = {row.get("Service"): row for row in rows}
        parts = []
        for service in services:
            row = states.get(self.compose_service(service.name))
            if row is None:
                # No container (its image is missing, say): Compose's own error, just
                # before this, says why; "(none)" log lines would only bury it.
                continue
            parts.append(
                f"{service.name}: {row.get('State', 'no container')}"
                f" (exit code {row.get('ExitCode', '?')}); last log lines:\n"
                + self.log_tail(service.name)
            )
        return "\n".join(parts)

    def _container_state(self, name: str) -> tuple[str, int]:
        rows = docker_cli.project_containers(str(self.state.compose_project)) or []
        for row in rows:
            if row.get("Service") == self.compose_service(name):
                return str(row.get("State", "")), int(row.get("ExitCode", 0) or 0)
        return "missing", -1

    def _remove(self, name: str) -> None:
        """Stop and remove ``name``'s container: nothing runs unaccounted for."""
        self.sync_logs()  # its log lines are the reason a test will be skipped with
        self.compose("rm", "--force", "--stop", "--volumes", self.compose_service(name))
        self.state.compose_services.pop(name, None)
        self.state.save(self.state_file)

    def _raise_if_dead(self, service: ServiceSpec) -> None:
        state, code = self._container_state(service.name)
        if state in {"exited", "dead", "missing"}:
            raise ServiceStartError(
                f"{service.name} ({state}, exit code {code}) stopped before it was ready;"
                f" {self._failure_details([service])}"
            )

    def _not_ready_details(self, service: ServiceSpec) -> str:
        return self._failure_details([service])

    # -- logs --------------------------------------------------------------

    def sync_logs(self) -> None:
        """Rewrite each service's log file from ``docker compose logs`` (one call).

        A container's log only grows while the container exists (stop, kill and
        restart keep it), so byte offsets taken from an earlier sync stay valid.
        """
        by_compose = {s.compose_service: s.name for s in self.spec.services if s.compose_service}
        result = docker_cli.run_docker(
            self._argv("logs", "--no-color", "--timestamps", *sorted(by_compose)),
            timeout=60,
            env=self._env(),
        )
        if result.returncode != 0:
            return  # nothing to add; the files keep what an earlier sync wrote
        lines: dict[str, list[str]] = {name: [] for name in by_compose.values()}
        for raw in result.stdout.splitlines():
            match = _LOG_PREFIX.match(raw)
            if match and match["container"] in by_compose:
                lines[by_compose[match["container"]]].append(match["line"])
        for name, service_lines in lines.items():
            path = self.log_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("".join(f"{line}\n" for line in service_lines), encoding="utf-8")
            os.replace(tmp, path)

    # -- fault injection ---------------------------------------------------

    def _require_started(self, name: str) -> str:
        if name not in self.started():
            raise KeyError(f"service {name!r} is not running")
        return self.compose_service(name)

    def _forget(self, name: str) -> None:
        # Like the local backend dropping the process record: the stack counts as
        # complete again only after start(name).
        del self.state.compose_services[name]
        self.state.save(self.state_file)

    def stop(self, name: str, grace: float = 10.0) -> None:
        if name not in self.started():
            return
        self.compose("stop", "--timeout", f"{int(grace)}", self.compose_service(name))
        self._forget(name)

    def kill(self, name: str) -> None:
        self.compose("kill", "--signal", "SIGKILL", self._require_started(name))
        self._forget(name)

    def start(self, name: str) -> None:
        service = self.spec.service(name)
        self.assign_ports()
        self._record_started([service])
        try:
            self.compose(
                "up", "--detach", "--no-build", "--pull", "never", "--no-deps", "--wait",
                "--wait-timeout", f"{int(service.ready.timeout) + 1}", self.compose_service(name),
                timeout=service.ready.timeout + 120,
            )  # fmt: skip
        except ServiceStartError as exc:
            raise ServiceStartError(_joined(exc, self._failure_details([service]))) from None
        self.wait_ready(name)

    def pause(self, name: str) -> None:
        self.compose("pause", self._require_started(name))

    def resume(self, name: str) -> None:
        self.compose("unpause", self._require_started(name))

    def stop_all(self) -> None:
        self.sync_logs()
        self.state.kill_all()  # `docker compose -p PROJECT down --volumes`
        self.state.compose_services.clear()


def unavailable_reason(spec: StackSpec, *, optional_images: bool = True) -> str | None:
    """Why this stack cannot run on the compose backend here, or None when it can.

    ``optional_images=False``: only the required services' images must exist; an
    optional service whose image is missing is then only unavailable at start (its
    tests skip). A Compose file that Docker rejects is an error (raised), not a reason
    to skip.
    """
    if not spec.compose_files:
        return f"stack {spec.name!r} has no compose_files"
    without = [s.name for s in spec.services if not s.compose_service]
    if without:
        return f"services without compose_service in the stack file: {', '.join(without)}"
    reason = docker_cli.unavailable_reason()
    if reason is not None:
        return reason
    argv = ["compose"]
    for compose_file in spec.compose_files:
        argv += ["-f", str((spec.root / compose_file).resolve())]
    services = sorted(
        {str(s.compose_service) for s in spec.services if optional_images or not s.optional}
    )
    result = docker_cli.run_docker([*argv, "config", "--images", *services], timeout=60)
    if result.returncode != 0:
        raise ServiceStartError(
            f"`docker compose config` rejects the stack's Compose files: {result.stderr.strip()}"
        )
    missing = docker_cli.missing_images(sorted(set(result.stdout.split())))
    if missing:
        return (
            f"image {', '.join(missing)} is not built and cannot be pulled here:"
            " run docker/build-images.sh (make docker-images)"
        )
    return None
