"""Lazy package exports (PEP 562), shared by the three plugins' packages.

pytest imports each plugin module, and so its package, at every start: a package that
imported its core eagerly would make every run pay for psutil, filelock, yaml or
prometheus_client whether a test used the plugin or not.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing each name from its submodule on first use.

    ``exports`` maps an exported name to the submodule (relative to ``package``) that
    defines it. The value is then stored in the package, so later look-ups skip this.
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
