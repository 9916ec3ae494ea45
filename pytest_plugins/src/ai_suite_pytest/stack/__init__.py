"""A declarative, xdist-shared stack of services for tests (docs/testing/stack.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ai_suite_pytest._lazy import lazy_exports

__all__ = ["ServiceUnavailable", "Stack"]

if TYPE_CHECKING:
    from ai_suite_pytest.stack.backend import ServiceUnavailable
    from ai_suite_pytest.stack.handle import Stack


# Imported on first use: pytest loads the plugin module (inside this package) at every
# start, and the engine (psutil, filelock, the backends) must not cost a run that uses no
# stack anything.
__getattr__ = lazy_exports(__name__, {"ServiceUnavailable": "backend", "Stack": "handle"})
