"""Fixtures for the plugin tests that drive pytest itself: ``pytester``, and the arguments
that load a plugin.

pytest accepts ``pytest_plugins = [...]`` only in the rootdir conftest, so the
``pytester`` plugin is registered here at configure time unless ``-p pytester``
already did it.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


def plugin_args(module: str, entry_point: str) -> list[str]:
    """Load ``module`` in the inner run, whether or not its entry point is installed.

    Blocking the entry-point name first avoids registering the same module twice.
    """
    # pytest-asyncio is not needed inside and would warn about its unset loop scope.
    return ["-p", f"no:{entry_point}", "-p", module, "-p", "no:cacheprovider", "-p", "no:asyncio"]


@pytest.fixture
def sqlite_args() -> list[str]:
    return plugin_args("ai_suite_pytest.sqlite_reset.plugin", "ai_suite_sqlite_reset")


@pytest.fixture
def metrics_args() -> list[str]:
    return plugin_args("ai_suite_pytest.metrics.plugin", "ai_suite_metrics")


@pytest.fixture
def lone_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """``pytester`` whose inner runs load only the plugins named with ``-p``.

    Autoloading every installed plugin (coverage, xdist, hypothesis, testcontainers...)
    costs seconds per inner run and is not what these tests are about.
    """
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester
