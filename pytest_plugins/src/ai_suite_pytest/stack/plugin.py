"""pytest adapter for the stack: options, the ``stack`` fixture, logs on failure.

The engine (spec, local backend, manager, reaper) never imports pytest.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from ai_suite_pytest.stack import compose
from ai_suite_pytest.stack.backend import ServiceStartError, ServiceUnavailable
from ai_suite_pytest.stack.handle import Stack
from ai_suite_pytest.stack.manager import OWNER_ENV, StackManager, owner_from_env
from ai_suite_pytest.stack.spec import StackSpecError, load_stack
from ai_suite_pytest.stack.state import current_process_identity

BACKENDS = ("auto", "local", "compose")
_manager_key = pytest.StashKey[StackManager | None]()
_previous_owner_key = pytest.StashKey[str | None]()
_offsets_key = pytest.StashKey[dict[str, int]]()
_choice_key = pytest.StashKey[tuple[str, str | None]]()
_unavailable_key = pytest.StashKey[dict[str, str]]()


def _backend(value: str) -> str:
    if value not in BACKENDS:
        raise pytest.UsageError(
            f"--stack-backend must be one of {', '.join(BACKENDS)}, not {value!r}"
        )
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stack", "service stack shared by all tests and xdist workers")
    group.addoption(
        "--stack-backend",
        type=_backend,
        default=None,
        help="auto (default), local or compose; ini: stack_backend",
    )
    group.addoption("--stack-file", default=None, help="stack YAML file; ini: stack_file")
    group.addoption(
        "--stack-keep",
        action="store_true",
        default=None,
        help="leave the stack running and reuse it next run if unchanged; " "ini: stack_keep",
    )
    group.addoption(
        "--stack-require",
        action="append",
        default=None,
        metavar="NAME",
        help="treat optional service NAME (and what it needs) as required: if it cannot"
        " start, the run fails instead of skipping its tests; repeatable or comma-separated;"
        " ini: stack_require",
    )
    group.addoption(
        "--stack-state-dir",
        default=None,
        help="where running stacks are recorded; ini: stack_state_dir",
    )
    group.addoption(
        "--stack-artifacts",
        default=None,
        help="where full service logs are copied; ini: stack_artifacts",
    )
    parser.addini("stack_backend", "default stack backend", default="auto")
    parser.addini("stack_file", "stack YAML file, relative to rootdir", default="")
    parser.addini("stack_keep", "keep and reuse the stack between runs", type="bool", default=False)
    parser.addini("stack_state_dir", "stack state directory", default=".pytest_stack")
    parser.addini("stack_require", "optional services that must start", type="args", default=[])
    parser.addini("stack_artifacts", "service log directory", default="artifacts/stack")


def _option(config: pytest.Config, name: str) -> object:
    value = config.getoption(f"--{name.replace('_', '-')}")
    return value if value is not None else config.getini(name)


def _path(config: pytest.Config, name: str) -> Path | None:
    value = str(_option(config, name) or "")
    return (config.rootpath / value) if value else None


def _required(config: pytest.Config) -> list[str]:
    values = config.getoption("--stack-require") or config.getini("stack_require")
    return [name for value in values for name in str(value).split(",") if name]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "stack_exclusive: the test stops, kills or pauses stack services, so it runs while no"
        " other test (in any xdist worker) uses the stack",
    )
    _backend(str(_option(config, "stack_backend")))
    config.stash[_manager_key] = None
    if not hasattr(config, "workerinput"):
        # The controller owns the run's stack; xdist workers inherit this.
        config.stash[_previous_owner_key] = os.environ.get(OWNER_ENV)
        pid, created = current_process_identity()
        os.environ[OWNER_ENV] = f"{pid}:{created}"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _previous_owner_key in config.stash:
        previous = config.stash[_previous_owner_key]
        if previous is None:
            os.environ.pop(OWNER_ENV, None)
        else:
            os.environ[OWNER_ENV] = previous


def _manager(config: pytest.Config) -> StackManager | None:
    if config.stash.get(_manager_key, None) is not None:
        return config.stash[_manager_key]
    stack_file = _path(config, "stack_file")
    if stack_file is None:
        return None
    try:
        spec = load_stack(stack_file).requiring(_required(config))
    except StackSpecError as exc:
        raise pytest.UsageError(str(exc)) from None
    owner = owner_from_env() or current_process_identity()
    manager = StackManager(
        spec,
        state_dir=_path(config, "stack_state_dir") or config.rootpath / ".pytest_stack",
        owner=owner,
        keep=bool(_option(config, "stack_keep")),
    )
    config.stash[_manager_key] = manager
    return manager


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or _path(config, "stack_file") is None:
        return
    manager = _manager(config)
    if manager is None:
        return
    killed = manager.sweep_leftovers()
    if killed:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"stack: killed leftovers of an earlier run: {', '.join(killed)}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return  # workers never tear down: the controller does, after the last one
    manager = config.stash.get(_manager_key, None)
    if manager is None and _path(config, "stack_file") is not None:
        manager = _manager(config)
    if manager is not None:
        with manager.locked() as state:
            if state is not None and state.owner_pid == os.getpid():
                config.stash[_unavailable_key] = dict(state.unavailable)
        manager.teardown(_path(config, "stack_artifacts"))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """One line per optional service that did not run, even without ``-rs``: its tests
    were skipped. The reason's last line is the service's own last word (for llama.cpp's
    launcher: "run `make llama`")."""
    for name, reason in config.stash.get(_unavailable_key, {}).items():
        last = [line.strip() for line in reason.splitlines() if line.strip()][-1]
        terminalreporter.write_line(
            f"stack: optional service {name!r} was unavailable, its tests skipped: {last}",
            yellow=True,
        )


def _choose_backend(config: pytest.Config, manager: StackManager) -> tuple[str, str | None]:
    """(backend, reason to skip): ``auto`` is compose when it can run here, else local."""
    if _choice_key in config.stash:
        return config.stash[_choice_key]
    wanted = str(_option(config, "stack_backend"))
    choice: tuple[str, str | None] = ("local", None)
    if wanted != "local":
        spec = manager.spec
        if wanted == "compose":
            # Asked for explicitly: optional services without a Compose service or without
            # their image are only unavailable (their tests skip), they do not stop the
            # backend. `auto` keeps to local processes then, where they can run.
            unrunnable = spec.without_runner("compose")
            spec = spec.model_copy(
                update={"services": [s for s in spec.services if s.name not in unrunnable]}
            )
        reason = compose.unavailable_reason(spec, optional_images=wanted != "compose")
        if reason is None:
            choice = ("compose", None)
        elif wanted == "compose":
            choice = ("compose", f"stack backend 'compose' unavailable: {reason}")
    config.stash[_choice_key] = choice
    return choice


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Stack:
    """The service stack described by ``stack_file``, started once for the whole run.

    All xdist workers share one stack; the controller stops it after the last
    worker finishes (unless ``--stack-keep``). ``stack.url(name)`` gives a
    service's base URL; ``stop``, ``kill``, ``restart``, ``pause``, ``resume``
    and ``wait_healthy`` inject faults. On failure, each service's log lines
    written during the test are attached to the report.
    """
    config = request.config
    manager = _manager(config)
    if manager is None:
        pytest.skip("no stack file configured: set `stack_file` in the ini or --stack-file")
    try:
        backend, skip_reason = _choose_backend(config, manager)
        if skip_reason is not None:
            pytest.skip(skip_reason)
        return Stack(manager, manager.acquire(backend=backend), on_unavailable=_skip)
    except ServiceStartError as exc:
        pytest.fail(f"stack {manager.spec.name!r} failed to start: {exc}", pytrace=False)


def _skip(unavailable: ServiceUnavailable) -> NoReturn:
    """An optional service the test uses is not running: the test is skipped, saying why."""
    pytest.skip(f"stack service {unavailable.name!r} is unavailable: {unavailable.reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    stack_value = getattr(item, "funcargs", {}).get("stack")
    if not isinstance(stack_value, Stack):
        yield
        return
    coordinator = stack_value.coordinator
    exclusive = item.get_closest_marker("stack_exclusive") is not None
    with coordinator.exclusive() if exclusive else coordinator.shared():
        item.stash[_offsets_key] = stack_value.log_offsets()
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.failed or _offsets_key not in item.stash:
        return
    stack_value = item.funcargs.get("stack")  # type: ignore[attr-defined]
    if isinstance(stack_value, Stack):
        for name, text in stack_value.logs_since(item.stash[_offsets_key]).items():
            report.sections.append((f"stack log: {name}", text))
