"""The adopter example's fixtures: the notes service from the stack, its database reset
for each test that uses it.

Every xdist worker shares one stack, so one notes service and one database file. A
test that starts from a clean database must therefore have the service to itself:
tests using ``notes_db`` are marked ``stack_exclusive`` (no other test runs meanwhile)
and the reset happens inside that lock, just before the test body (see
``pytest_runtest_call`` below), never in the fixture set-up, which runs before the
lock is taken.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest


@pytest.fixture
def notes_url(stack) -> str:
    return stack.url("app")


@pytest.fixture
def notes_db(stack, sqlite_db_reset) -> Path:
    """The notes service's database file, reset to the template before the test body."""
    return stack.data_dir / "app.db"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "notes_db" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack_exclusive)


# trylast: the innermost wrapper, so it runs inside the stack plugin's, which holds the
# exclusive lock while the test body runs.
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    funcargs = getattr(item, "funcargs", {})
    if "notes_db" in funcargs:
        # The service keeps no connection open between requests; had it one, the backup
        # API would still reach it (the reset writes through SQLite, not over the file).
        funcargs["sqlite_db_reset"](funcargs["notes_db"])
    return (yield)
