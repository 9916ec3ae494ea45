"""pytest adapter for the stack: options, the ``stack`` fixture, locks, logs on failure.

The engine (spec, backends, manager, reaper) never imports pytest. This module imports
only pytest at import time: the engine (psutil, filelock, the backends) is imported
when a test uses the stack, and the stack file (YAML) is read at configure time only
when one is configured, so a run that uses no stack pays next to nothing for it.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from ai_suite_pytest.stack.backend import ServiceUnavailable
    from ai_suite_pytest.stack.exclusive import Coordinator
    from ai_suite_pytest.stack.handle import Stack
    from ai_suite_pytest.stack.manager import StackManager
    from ai_suite_pytest.stack.spec import StackSpec

BACKENDS = ("auto", "local", "compose")
OWNER_ENV = "PYTEST_STACK_OWNER"  # manager.OWNER_ENV, without importing the manager
RESTORED = "stack_restored"  # user_properties key of a test after which services came back
# The engine's types are only annotations here (imported when a stack is used).
_spec_key: pytest.StashKey[StackSpec | None] = pytest.StashKey()
_manager_key: pytest.StashKey[StackManager | None] = pytest.StashKey()
_coordinator_key: pytest.StashKey[Coordinator] = pytest.StashKey()
_previous_owner_key = pytest.StashKey[str | None]()
_offsets_key = pytest.StashKey[dict[str, int]]()
_locks_key = pytest.StashKey[ExitStack]()
_choice_key = pytest.StashKey[tuple[str, str | None]]()
_unavailable_key = pytest.StashKey[dict[str, str]]()
_restored_key = pytest.StashKey[list[tuple[str, str]]]()


def _backend(value: str) -> str:
    if value not in BACKENDS:
        raise pytest.UsageError(
            f"--stack-backend must be one of {', '.join(BACKENDS)}, not {value!r}"
            " (the option, or ini stack_backend)"
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


def _state_dir(config: pytest.Config) -> Path:
    return _path(config, "stack_state_dir") or config.rootpath / ".pytest_stack"


def _check_directory_option(config: pytest.Config, name: str) -> None:
    path = _path(config, name)
    if path is not None and path.exists() and not path.is_dir():
        flag = "--" + name.replace("_", "-")
        raise pytest.UsageError(
            f"{flag} (ini {name}) = {path} is a file, not a directory; point it at a"
            " directory (it is created if missing)"
        )


def pytest_configure(config: pytest.Config) -> None:
    """Every option, ini value and the stack file itself are checked here, before a test
    runs: a mistake is a usage error naming the key, the value and the fix."""
    config.addinivalue_line(
        "markers",
        "stack_exclusive: the test stops, kills or pauses stack services (or resets their"
        " data), so it runs, from its setup to its teardown, while no other test (in any"
        " xdist worker) uses the stack",
    )
    _backend(str(_option(config, "stack_backend")))
    try:
        config.getini("stack_keep")
    except (ValueError, pytest.UsageError):  # pytest says only "invalid truth value"
        raise pytest.UsageError(
            f"ini stack_keep must be true or false, not {config.inicfg.get('stack_keep')!r};"
            " true keeps the stack running for the next run (like --stack-keep)"
        ) from None
    for name in ("stack_state_dir", "stack_artifacts"):
        _check_directory_option(config, name)
    config.stash[_manager_key] = None
    config.stash[_spec_key] = None
    config.stash[_restored_key] = []
    config.pluginmanager.register(_RestoredCollector(config), "stack-restored-collector")
    config.pluginmanager.register(_MarkerErrors(), "stack-marker-errors")
    stack_file = _path(config, "stack_file")
    if stack_file is not None:
        from ai_suite_pytest.stack.spec import StackSpecError, load_stack

        try:
            config.stash[_spec_key] = load_stack(stack_file).requiring(_required(config))
        except StackSpecError as exc:
            raise pytest.UsageError(f"{exc} (--stack-file / ini stack_file)") from None
    elif _required(config):
        raise pytest.UsageError(
            f"--stack-require {','.join(_required(config))} needs a stack file: set"
            " `stack_file` in the ini or pass --stack-file"
        )
    if not hasattr(config, "workerinput"):
        # The controller owns the run's stack; xdist workers inherit this.
        # Only the pid: its start time (which guards against pid reuse) is looked up by
        # whoever needs it, so that a run using no stack never imports psutil.
        config.stash[_previous_owner_key] = os.environ.get(OWNER_ENV)
        os.environ[OWNER_ENV] = str(os.getpid())


def pytest_unconfigure(config: pytest.Config) -> None:
    if _previous_owner_key in config.stash:
        previous = config.stash[_previous_owner_key]
        if previous is None:
            os.environ.pop(OWNER_ENV, None)
        else:
            os.environ[OWNER_ENV] = previous


_marker_error_key = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The marker's arguments are checked once the tests are collected, before any runs."""
    for item in items:
        marker = item.get_closest_marker("stack_exclusive")
        if marker is not None and (marker.args or marker.kwargs):
            message = (
                f"{item.nodeid}: @pytest.mark.stack_exclusive takes no arguments, got"
                f" args={marker.args!r} kwargs={marker.kwargs!r}; write"
                " @pytest.mark.stack_exclusive (the whole stack is locked)"
            )
            if not hasattr(config, "workerinput"):
                raise pytest.UsageError(message)
            # An xdist worker cannot stop the run with a usage error (xdist reports an
            # internal error instead): the test fails at setup with the same message.
            item.stash[_marker_error_key] = message


class _MarkerErrors:
    """Fails, at setup, a test whose marker an xdist worker found malformed. A plain hook
    (not a wrapper around the others): pytest's own setup wrappers still run around it."""

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if _marker_error_key in item.stash:
            pytest.fail(item.stash[_marker_error_key], pytrace=False)


def _manager(config: pytest.Config) -> StackManager | None:
    if config.stash.get(_manager_key, None) is not None:
        return config.stash[_manager_key]
    spec = config.stash.get(_spec_key, None)
    if spec is None:
        return None
    from ai_suite_pytest.stack.manager import StackManager, owner_from_env
    from ai_suite_pytest.stack.state import current_process_identity

    owner = owner_from_env() or current_process_identity()
    manager = StackManager(
        spec,
        state_dir=_state_dir(config),
        owner=owner,
        keep=bool(_option(config, "stack_keep")),
    )
    config.stash[_manager_key] = manager
    return manager


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    spec = config.stash.get(_spec_key, None)
    if hasattr(config, "workerinput") or spec is None:
        return
    # Records of earlier runs are rare: only then is the engine imported to sweep them.
    if not any(_state_dir(config).glob("*.json")):
        return
    manager = _manager(config)
    assert manager is not None
    killed = manager.sweep_leftovers()
    if killed:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"stack: killed leftovers of an earlier run: {', '.join(killed)}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return  # workers never tear down: the controller does, after the last one
    spec = config.stash.get(_spec_key, None)
    manager = config.stash.get(_manager_key, None)
    if manager is None and spec is not None and (_state_dir(config) / f"{spec.name}.json").exists():
        manager = _manager(config)  # the stack was started by a worker
    if manager is not None:
        with manager.locked() as state:
            if state is not None and state.owner_pid == os.getpid():
                config.stash[_unavailable_key] = dict(state.unavailable)
        manager.teardown(_path(config, "stack_artifacts"))


class _RestoredCollector:
    """Collects (in the controller, from every worker) the services restored after a
    test, for the terminal summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":
            return
        for key, value in report.user_properties:
            if key == RESTORED:
                self.config.stash[_restored_key].append((report.nodeid, str(value)))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """One line per optional service that did not run, even without ``-rs`` (its tests
    were skipped), and one per test after which services had to be brought back."""
    for name, reason in config.stash.get(_unavailable_key, {}).items():
        last = [line.strip() for line in reason.splitlines() if line.strip()][-1]
        terminalreporter.write_line(
            f"stack: optional service {name!r} was unavailable, its tests skipped: {last}",
            yellow=True,
        )
    for nodeid, what in config.stash.get(_restored_key, []):
        terminalreporter.write_line(
            f"stack: restored {what} after {nodeid} left it down", yellow=True
        )


def _choose_backend(config: pytest.Config, manager: StackManager) -> tuple[str, str | None]:
    """(backend, reason to skip): ``auto`` is compose when it can run here, else local."""
    if _choice_key in config.stash:
        return config.stash[_choice_key]
    wanted = str(_option(config, "stack_backend"))
    choice: tuple[str, str | None] = ("local", None)
    if wanted != "local":
        from ai_suite_pytest.stack import compose

        spec = manager.spec
        if wanted == "compose":
            # Asked for explicitly: optional services without a Compose service or without
            # their image are only unavailable (their tests skip), they do not stop the
            # backend. `auto` keeps to local processes then, where they can run.
            unrunnable = spec.without_runner("compose")
            spec = spec.replace(services=[s for s in spec.services if s.name not in unrunnable])
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
    service's base URL; ``stop``, ``kill``, ``restart``, ``pause``, ``resume``,
    ``fault`` and ``wait_healthy`` inject faults. On failure, each service's log lines
    written during the test are attached to the report.
    """
    config = request.config
    manager = _manager(config)
    if manager is None:
        pytest.skip("no stack file configured: set `stack_file` in the ini or --stack-file")
    from ai_suite_pytest.stack.backend import ServiceStartError
    from ai_suite_pytest.stack.handle import Stack

    try:
        backend, skip_reason = _choose_backend(config, manager)
        if skip_reason is not None:
            pytest.skip(skip_reason)
        handle = Stack(manager, manager.acquire(backend=backend), on_unavailable=_skip)
    except ServiceStartError as exc:
        pytest.fail(f"stack {manager.spec.name!r} failed to start: {exc}", pytrace=False)
    return handle


@pytest.fixture
def stack_exclusive(stack: Stack) -> Stack:
    """The stack, with this test alone on it from its setup to its teardown.

    Requesting it has the effect of ``@pytest.mark.stack_exclusive``; request it from a
    fixture (an autouse reset of a service's database, say) to make every test that uses
    that fixture exclusive, so the reset cannot run under another worker's test.
    """
    return stack


def _skip(unavailable: ServiceUnavailable) -> NoReturn:
    """An optional service the test uses is not running: the test is skipped, saying why."""
    pytest.skip(f"stack service {unavailable.name!r} is unavailable: {unavailable.reason}")


def _uses_stack(item: pytest.Item) -> bool:
    return "stack" in getattr(item, "fixturenames", ())


def _is_exclusive(item: pytest.Item) -> bool:
    return item.get_closest_marker("stack_exclusive") is not None or "stack_exclusive" in getattr(
        item, "fixturenames", ()
    )


def _coordinator(config: pytest.Config) -> Coordinator:
    if _coordinator_key not in config.stash:
        from ai_suite_pytest.stack.exclusive import Coordinator, coordination_dir

        spec = config.stash[_spec_key]
        assert spec is not None
        directory = coordination_dir(_state_dir(config), spec.name)
        config.stash[_coordinator_key] = Coordinator(directory)
    return config.stash[_coordinator_key]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Take the test's lock before any of its fixtures is set up: an autouse fixture that
    resets shared data runs inside it, as do the test and its teardown."""
    if _uses_stack(item) and item.config.stash.get(_spec_key, None) is not None:
        coordinator = _coordinator(item.config)
        locks = ExitStack()
        lock = coordinator.exclusive() if _is_exclusive(item) else coordinator.shared()
        locks.enter_context(lock)
        item.stash[_locks_key] = locks
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    stack_value = getattr(item, "funcargs", {}).get("stack")
    if stack_value is not None and hasattr(stack_value, "log_offsets"):
        item.stash[_offsets_key] = stack_value.log_offsets()
    return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After the test's fixtures are torn down: bring back what it left down (under the
    exclusive lock, so no other worker's test sees the restart), then release its lock."""
    try:
        return (yield)
    finally:
        locks = item.stash.get(_locks_key, None)
        try:
            _restore_left_down(item, locks)
        finally:
            if locks is not None:
                locks.close()


def _restore_left_down(item: pytest.Item, locks: ExitStack | None) -> None:
    stack_value = getattr(item, "funcargs", {}).get("stack")
    if stack_value is None or not hasattr(stack_value, "left_down"):
        return
    if not stack_value.left_down():  # the usual case: one small JSON read
        return
    if _is_exclusive(item):
        restored = stack_value.restore_all()
    else:
        # A shared test cannot take the exclusive lock while it holds its shared one:
        # drop it first, then wait until no other test uses the stack.
        if locks is not None:
            locks.close()
        with _coordinator(item.config).exclusive():
            restored = stack_value.restore_all()
    for name, how in restored.items():
        item.user_properties.append((RESTORED, f"{name} ({how})"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, pytest.TestReport]:
    report: pytest.TestReport = yield
    if call.when != "call" or not report.failed or _offsets_key not in item.stash:
        return report
    stack_value = item.funcargs.get("stack")  # type: ignore[attr-defined]
    if stack_value is not None and hasattr(stack_value, "logs_since"):
        for name, text in stack_value.logs_since(item.stash[_offsets_key]).items():
            report.sections.append((f"stack log: {name}", text))
    return report
