"""Per-test SQLite resets: a template built once per worker, restored in well under 1 ms.

The core (this package minus ``plugin``) does not import pytest. See
``docs/testing/sqlite-reset.md``.
"""

from ai_suite_pytest.sqlite_reset.core import (
    DEFAULT_SEED,
    ResetResult,
    SqliteReset,
    load_object,
    make_builder,
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
    "restore",
    "savepoint",
    "worker_id",
]
