"""The project's own service, running in the stack: per-test database, metric deltas."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from contextlib import closing

import pytest


def call(url: str, method: str = "GET", body: object = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# Parametrized so that several tests write: each one must start from the empty template.
@pytest.mark.parametrize("text", ["first", "second", "third"])
def test_every_test_starts_from_an_empty_database(notes_url, notes_db, text):
    assert call(f"{notes_url}/notes") == (200, [])
    status, created = call(f"{notes_url}/notes", "POST", {"text": text})
    assert status == 201
    # AUTOINCREMENT starts over too: the reset restores sqlite_sequence with the rest.
    assert created == {"id": 1, "text": text}
    with closing(sqlite3.connect(notes_db)) as conn:
        assert conn.execute("SELECT text FROM notes").fetchall() == [(text,)]


def test_a_write_is_counted(notes_url, notes_db, metrics):
    watch = metrics.watch(notes_url)  # baseline scraped now
    call(f"{notes_url}/notes", "POST", {"text": "counted"})
    call(f"{notes_url}/notes", "POST", {"text": ""})  # refused: 400, not counted as created
    watch.assert_counter_delta("notes_created_total", {}, delta=1)
    watch.assert_counter_delta(
        "notes_http_requests_total", {"route": "/notes", "method": "POST"}, delta=2, aggregate=True
    )
    watch.assert_counter_delta(
        "notes_http_requests_total", {"route": "/notes", "status": "400"}, delta=1
    )


def test_reads_need_no_reset(notes_url):
    # No notes_db: this test shares the stack with others and may run in parallel.
    status, notes = call(f"{notes_url}/notes")
    assert status == 200
    assert isinstance(notes, list)
    assert call(f"{notes_url}/nope")[0] == 404
