"""The local backend: each service is a child process on a free loopback port.

Processes get their own session (process group), so signals reach their
children and Ctrl-C in the terminal does not hit them before teardown does.
Each start is recorded in the shared state before waiting for readiness, so a
crash at any moment leaves nothing the next run cannot sweep.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
from ai_suite_procs.groups import Group, spawn, stop_groups

from ai_suite_pytest.stack.backend import ServiceStartError, StackBackend
from ai_suite_pytest.stack.spec import ServiceSpec, StackSpec, render
from ai_suite_pytest.stack.state import ProcessRecord, StackState


class LocalBackend(StackBackend):
    name = "local"

    def __init__(self, spec: StackSpec, run_dir: Path, state: StackState, state_file: Path):
        super().__init__(spec, run_dir, state, state_file)
        self._popen: dict[str, subprocess.Popen[bytes]] = {}

    def sync_logs(self) -> None:
        """Nothing to do: the processes write their log files themselves."""

    # -- lifecycle ---------------------------------------------------------

    def start_all(self, only: list[str] | None = None) -> None:
        self.assign_ports()
        for service in self.spec.start_order(only):
            if service.name in self.state.settled():
                continue
            blocked = self.blocked_by(service)
            if blocked is not None:  # only optional services can be blocked (spec.py)
                self.mark_unavailable(service.name, blocked)
                continue
            try:
                self.start(service.name)
            except ServiceStartError as exc:
                if not service.optional:
                    raise
                # Alive but never ready: stop it, so that nothing runs unaccounted for.
                self.stop(service.name, grace=5.0)
                self.mark_unavailable(service.name, f"optional service {exc}")

    def start(self, name: str) -> None:
        service = self.spec.service(name)
        running = self.state.processes.get(name)
        if running is not None and running.alive():
            # A second process would replace the record of the first, which then
            # outlives the run: neither teardown nor the reaper would know it.
            raise ServiceStartError(
                f"{name} is already running (pid {running.pid}): stop or kill it first,"
                " or use restart"
            )
        if not service.command:
            raise ServiceStartError(f"{name}: no 'command' in the stack file for the local backend")
        context = self.context(service)
        argv = [render(part, context=context) for part in service.command]
        env = {**os.environ, **{k: render(v, context=context) for k, v in service.env.items()}}
        env["PYTHONUNBUFFERED"] = "1"
        log_path = self.log_path(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        Path(context["data_dir"]).mkdir(parents=True, exist_ok=True)
        self.mark_log(name)
        self._set_paused(name, False)
        with log_path.open("ab") as log_file:
            # Not tied to this process's life (no die_with_parent): a stack is shared by
            # the xdist workers and may be kept across runs; the reaper sweeps leftovers.
            process = spawn(argv, stdout=log_file, env=env, cwd=self.spec.cwd)
        self._popen[name] = process
        self.state.processes[name] = ProcessRecord(
            service=name,
            pid=process.pid,
            pgid=process.pid,
            create_time=psutil.Process(process.pid).create_time(),
            port=self.state.ports.get(name, 0),  # 0: a service without a port
            log_path=str(log_path),
        )
        self.state.save(self.state_file)  # recorded before waiting: nothing can leak
        self.wait_ready(name, timeout=service.ready.timeout)

    def _exit_code(self, name: str) -> int | None:
        process = self._popen.get(name)
        if process is not None:
            return process.poll()
        record = self.state.processes.get(name)
        return None if record and record.alive() else -1

    def _raise_if_dead(self, service: ServiceSpec) -> None:
        code = self._exit_code(service.name)
        if code is not None:
            raise ServiceStartError(
                f"{service.name} exited with code {code} before it was ready"
                f" (log: {self.log_path(service.name)}); last lines:\n"
                + self.log_tail(service.name)
            )

    def _not_ready_details(self, service: ServiceSpec) -> str:
        return f"last log lines:\n{self.log_tail(service.name)}"

    # -- fault injection ---------------------------------------------------

    def _signal(self, name: str, sig: signal.Signals) -> None:
        record = self.state.processes.get(name)
        if record is None:
            raise KeyError(f"service {name!r} is not running")
        record.kill(sig)

    def stop(self, name: str, grace: float = 10.0) -> None:
        record = self.state.processes.get(name)
        if record is None:
            return
        self._signal(name, signal.SIGCONT)  # a paused process cannot handle SIGTERM

        def alive() -> bool:
            self._reap(name)
            return record.alive()

        stop_groups([Group(name, send=record.kill, alive=alive)], grace)
        self._reap(name, wait=True)
        del self.state.processes[name]
        self._set_paused(name, False)

    def kill(self, name: str) -> None:
        self._signal(name, signal.SIGKILL)
        self._reap(name, wait=True)
        del self.state.processes[name]
        self._set_paused(name, False)

    def pause(self, name: str) -> None:
        self._signal(name, signal.SIGSTOP)
        self._set_paused(name, True)

    def resume(self, name: str) -> None:
        self._signal(name, signal.SIGCONT)
        self._set_paused(name, False)

    def _reap(self, name: str, wait: bool = False) -> None:
        process = self._popen.get(name)
        if process is None:
            record = self.state.processes.get(name)
            proc = record.process() if record else None
            if proc is not None and wait:
                psutil.wait_procs([proc], timeout=5)
            return
        if wait:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                return
            self._popen.pop(name, None)
        else:
            process.poll()

    def stop_all(self) -> None:
        for service in reversed(self.spec.start_order()):
            if service.name in self.state.processes:
                self.stop(service.name, grace=5.0)
        # Anything recorded but unknown to the spec (renamed service) goes too.
        self.state.kill_all()
        self.state.processes.clear()
