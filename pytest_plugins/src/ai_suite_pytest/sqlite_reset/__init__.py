"""Per-test SQLite resets: a template built once per worker, restored in well under 1 ms.

The core (this package minus ``plugin``) does not import pytest. See
``docs/testing/sqlite-reset.md``.

The names below are imported on first access (PEP 562): the pytest plugin is loaded
at every pytest start and imports ``ai_suite_pytest.sqlite_reset.config`` through this
package, which must not pull in ``sqlite3`` and the core for a run that uses no fixture.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from ai_suite_pytest._lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_SEED": "core",
    "ResetResult": "core",
    "SqliteReset": "core",
    "load_object": "core",
    "make_builder": "core",
    "make_schema_builder": "core",
    "worker_id": "core",
    "LiveTargets": "restore",
    "ResetError": "restore",
    "ResetTimeout": "restore",
    "SavepointBroken": "restore",
    "restore": "restore",
    "savepoint": "restore",
    "Template": "template",
    "TemplateBuildError": "template",
    "TemplateCache": "template",
    "build_template": "template",
}

__all__ = [
    "DEFAULT_SEED",
    "LiveTargets",
    "ResetError",
    "ResetResult",
    "ResetTimeout",
    "SavepointBroken",
    "SqliteReset",
    "Template",
    "TemplateBuildError",
    "TemplateCache",
    "build_template",
    "load_object",
    "make_builder",
    "make_schema_builder",
    "restore",
    "savepoint",
    "worker_id",
]

if TYPE_CHECKING:
    from ai_suite_pytest.sqlite_reset.core import (
        DEFAULT_SEED,
        ResetResult,
        SqliteReset,
        load_object,
        make_builder,
        make_schema_builder,
        worker_id,
    )
    from ai_suite_pytest.sqlite_reset.restore import (
        LiveTargets,
        ResetError,
        ResetTimeout,
        SavepointBroken,
        restore,
        savepoint,
    )
    from ai_suite_pytest.sqlite_reset.template import (
        Template,
        TemplateBuildError,
        TemplateCache,
        build_template,
    )


__getattr__ = lazy_exports(__name__, _EXPORTS)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule ``restore`` sets the package attribute of that name to the
        # module; the exported name is the function (as when this package imported eagerly).
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
