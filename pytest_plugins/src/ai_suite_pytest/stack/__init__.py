"""A declarative, xdist-shared stack of services for tests (docs/testing/stack.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ServiceUnavailable", "Stack"]

if TYPE_CHECKING:
    from ai_suite_pytest.stack.backend import ServiceUnavailable
    from ai_suite_pytest.stack.handle import Stack


def __getattr__(name: str) -> Any:
    # Imported on first use: pytest loads the plugin module (inside this package) at every
    # start, and the engine (psutil, filelock, the backends) must not cost a run that uses
    # no stack anything.
    if name == "ServiceUnavailable":
        from ai_suite_pytest.stack.backend import ServiceUnavailable

        return ServiceUnavailable
    if name == "Stack":
        from ai_suite_pytest.stack.handle import Stack

        return Stack
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
