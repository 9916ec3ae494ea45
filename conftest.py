"""Repository-wide pytest configuration.

Markers follow the folder a test lives in, so ``pytest -m unit`` selects
exactly ``tests/unit`` and nobody has to remember to decorate a test.
A folder whose tests the ``-m`` expression can never select is not even
collected: ``pytest -m unit`` does not import the integration and e2e modules
only to deselect them afterwards.

Hypothesis runs under a profile named by ``HYPOTHESIS_PROFILE``: ``dev`` (the
default) tries few examples per property so the edit-test loop stays fast;
``ci`` (what ``make test`` and CI use) tries many.

``-n auto`` (in ``addopts``) spreads a run over the CPUs, but only a run that is worth
it, one of whole suites: naming a folder, a file or a test runs it in this process, so
that it starts at once and ``--pdb``, ``-s`` and breakpoints work as usual (see
``pytest_xdist_auto_num_workers``).

Tests are hermetic: whatever the caller exported (``GATEWAY_PORT``, ``AI_SUITE_HOST``,
``AI_SUITE_DATA_DIR``, ...) and whatever ``.env`` file lies in the working directory or
the data directory, no test sees it. At configure time, before any fixture (session ones
included) or subprocess exists, every variable a settings class reads is removed from this
process's environment and ``AI_SUITE_NO_ENV_FILE=1`` is set, so that settings built here and
in the processes the tests start read neither. The list comes from the settings classes
(``services.cli.configdoc.platform_variables``), not from a hand-kept list. A test that
wants a variable sets it with ``monkeypatch``; the .env tests unset the switch.

The garbage collector is paused while collecting, and after collection everything
imported so far (FastAPI, pydantic, qdrant-client, the MCP SDK: a few hundred
thousand objects that live until the end) is moved out of its sight with
``gc.freeze()``, so that each full collection during the tests scans only what the
tests made; docs/benchmarks.md has the numbers.
"""

from __future__ import annotations

import gc
import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression
from hypothesis import settings

# No deadline: a loaded 2-core CI machine makes per-example timings meaningless.
settings.register_profile("dev", max_examples=20, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# pytester drives the plugins of pytest_plugins/ (package ai_suite_pytest) as users run them.
pytest_plugins = ["pytester"]

ROOT = Path(__file__).parent
_FOLDER_MARKERS = {
    ROOT / "tests" / "unit": "unit",
    ROOT / "tests" / "integration": "integration",
    ROOT / "tests" / "e2e": "e2e",
}


def _hermetic_environment() -> dict[str, str]:
    """Remove the platform's variables from ``os.environ``; returns what was removed."""
    from services.cli.configdoc import platform_variables
    from services.core.settings import NO_ENV_FILE_VARIABLE

    names = platform_variables()
    removed = {name: os.environ.pop(name) for name in list(os.environ) if name.upper() in names}
    os.environ[NO_ENV_FILE_VARIABLE] = "1"
    return removed


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REMOVED_ENVIRONMENT] = _hermetic_environment()


def pytest_unconfigure(config: pytest.Config) -> None:
    from services.core.settings import NO_ENV_FILE_VARIABLE

    os.environ.pop(NO_ENV_FILE_VARIABLE, None)
    os.environ.update(config.stash.get(_REMOVED_ENVIRONMENT, {}))


_REMOVED_ENVIRONMENT = pytest.StashKey[dict[str, str]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path)
        for folder, marker in _FOLDER_MARKERS.items():
            if folder in path.parents:
                item.add_marker(getattr(pytest.mark, marker))
                break


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> object:
    # Collecting imports FastAPI, pydantic, qdrant-client and the MCP SDK: the
    # collector's automatic passes over that growing heap cost ~0.6 s per process and
    # find next to nothing. One pass at the end instead, so that garbage made while
    # collecting is still finalised (and any ResourceWarning it raises still reported)
    # rather than frozen forever.
    gc.disable()
    try:
        return (yield)
    finally:
        gc.enable()
        gc.collect()
        gc.freeze()


class _Undecidable(Exception):
    """The expression uses marker arguments (``-m "name(arg=1)"``): collect to find out."""


def folder_can_match(markexpr: str, folder_marker: str) -> bool:
    """Whether a test of the folder marked ``folder_marker`` could satisfy ``markexpr``.

    The folder's marker is set, the other folder markers are not, and every other
    marker the expression names is tried both ways (a test may or may not carry it).
    Unsure means yes: a folder is skipped only when no test in it can be selected.
    """
    try:
        expression = Expression.compile(markexpr)
    except SyntaxError:
        return True  # pytest reports the bad expression itself
    folder_markers = set(_FOLDER_MARKERS.values())
    free = sorted(expression.idents() - folder_markers)
    if len(free) > 10:
        return True
    for values in itertools.product((False, True), repeat=len(free)):
        matcher = _matcher(folder_marker, folder_markers, dict(zip(free, values, strict=True)))
        try:
            if expression.evaluate(matcher):
                return True
        except _Undecidable:
            return True
    return False


def _matcher(
    folder_marker: str, folder_markers: set[str], others: dict[str, bool]
) -> Callable[..., bool]:
    def matcher(name: str, /, **kwargs: object) -> bool:
        if kwargs:
            raise _Undecidable
        return name == folder_marker if name in folder_markers else others[name]

    return matcher


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    folder_marker = _FOLDER_MARKERS.get(collection_path)
    markexpr = config.getoption("markexpr", default="")
    if folder_marker and markexpr and not folder_can_match(markexpr, folder_marker):
        return True
    return None


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many xdist workers ``-n auto`` starts: one per CPU this process may use when
    the run covers whole suites (``pytest``, ``pytest -m unit``, ``pytest tests/unit``),
    none otherwise. A worker costs a few seconds to start (it imports and collects
    everything again), more than one folder's tests take; in this process ``--pdb``,
    ``-s`` and breakpoints behave as they always do.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` (pytest-xdist's own override) still decides first.
    """
    override = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if override and override.isdigit():
        return int(override)
    invocation_dir = config.invocation_params.dir
    if not all(_is_whole_suite(arg, invocation_dir) for arg in config.args):
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cpus if cpus and cpus > 1 else 0


_WHOLE_SUITES = {ROOT / "tests", *_FOLDER_MARKERS}


def _is_whole_suite(arg: str, invocation_dir: Path) -> bool:
    return "::" not in arg and (invocation_dir / arg).resolve() in _WHOLE_SUITES
