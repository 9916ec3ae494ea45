"""GET /v1/audit: who may read, filters, keyset pages under concurrent writes, JSONL export,
and the ``audit.read`` row every read leaves."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from services.security.audit import AuditEntry, AuditLog
from services.security.db import Database
from tests.unit.gateway.conftest import Gateway, MakeGateway  # type: ignore[import-not-found]

pytestmark = pytest.mark.anyio


def _seed(db: Database, rows: list[tuple[str, str, str]]) -> None:
    log = AuditLog(db, CollectorRegistry())
    for user, action, outcome in rows:
        log.write(AuditEntry(action=action, outcome=outcome, user=user))


def _set_ts(db: Database, action: str, ts: datetime) -> None:
    with db.transaction() as conn:
        conn.execute(
            "UPDATE audit_log SET ts = ? WHERE action = ?",
            (ts.isoformat(timespec="microseconds"), action),
        )


async def _get(gw: Gateway, role: str = "admin", **params: str):
    return await gw.client.get("/v1/audit", params=params, headers=gw.auth(role))


async def test_viewer_and_developer_get_403_and_the_denial_is_audited(
    make_gateway: MakeGateway,
) -> None:
    gw = await make_gateway()
    for role in ("viewer", "developer"):
        response = await _get(gw, role)
        assert response.status_code == 403, response.text
        assert "audit:read" in response.json()["error"]["message"]
    denied = [r for r in gw.audit_rows() if r[1] == "audit:read"]
    assert [(r[0], r[3]) for r in denied] == [
        ("viewer-user", "denied"),
        ("developer-user", "denied"),
    ]


async def test_admin_filters_by_user_action_and_outcome(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    _seed(
        gw.db,
        [
            ("alice", "chat:create", "ok"),
            ("alice", "tool:read_file", "denied"),
            ("bob", "chat:create", "ok"),
            ("alice", "chat:create", "error"),
        ],
    )
    response = await _get(gw, user="alice", action="chat:create")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["user"], r["action"], r["outcome"]) for r in body["data"]] == [
        ("alice", "chat:create", "error"),
        ("alice", "chat:create", "ok"),
    ]  # newest first
    assert body["next_cursor"] is None
    only_denied = (await _get(gw, outcome="denied", user="alice")).json()["data"]
    assert [r["action"] for r in only_denied] == ["tool:read_file"]
    assert isinstance(only_denied[0]["details"], dict)


async def test_since_and_until_bound_the_time_range(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    _seed(gw.db, [("alice", "old", "ok"), ("alice", "mid", "ok"), ("alice", "new", "ok")])
    now = datetime.now(UTC)
    _set_ts(gw.db, "old", now - timedelta(hours=3))
    _set_ts(gw.db, "mid", now - timedelta(minutes=90))
    _set_ts(gw.db, "new", now - timedelta(minutes=5))
    recent = (await _get(gw, user="alice", since="2h")).json()["data"]
    assert [r["action"] for r in recent] == ["new", "mid"]
    window = (await _get(gw, user="alice", since="2h", until="1h")).json()["data"]
    assert [r["action"] for r in window] == ["mid"]
    until_iso = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    before = (await _get(gw, user="alice", until=until_iso)).json()["data"]
    assert [r["action"] for r in before] == ["old"]


async def test_every_read_is_audited_with_its_filters(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    response = await _get(gw, user="alice", outcome="denied", since="2026-01-01T00:00:00Z")
    assert response.status_code == 200
    rows = gw.db.query(
        "SELECT user_name, outcome, details FROM audit_log WHERE action = 'audit.read'"
    )
    assert len(rows) == 1
    assert rows[0]["user_name"] == "admin-user"
    details = json.loads(rows[0]["details"])
    assert details["filters"] == {
        "user": "alice",
        "outcome": "denied",
        "since": "2026-01-01T00:00:00.000000+00:00",
    }


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"since": "1h", "until": "2h"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "!!not-a-cursor"}, "cursor"),
        ({"order": "sideways"}, "order"),
        ({"format": "csv"}, "format"),
        ({"user": ""}, "user"),
    ],
)
async def test_a_bad_parameter_is_a_400_naming_it(
    make_gateway: MakeGateway, params: dict[str, str], parameter: str
) -> None:
    gw = await make_gateway()
    response = await _get(gw, **params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == parameter
    assert error["message"].startswith(f"{parameter}: ")


async def test_limit_at_the_maximum_is_accepted(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    assert (await _get(gw, limit="1000")).status_code == 200


async def test_a_cursor_from_the_other_order_is_refused(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    _seed(gw.db, [("alice", "a", "ok")] * 3)
    page = (await _get(gw, limit="1", order="asc")).json()
    response = await _get(gw, limit="1", cursor=page["next_cursor"])  # default order desc
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "cursor"


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_paging_sees_every_row_exactly_once_while_rows_are_inserted(
    make_gateway: MakeGateway, order: str
) -> None:
    gw = await make_gateway()
    _seed(gw.db, [("alice", "chat:create", "ok")] * 250)
    existing = {r["id"] for r in gw.db.query("SELECT id FROM audit_log WHERE user_name='alice'")}
    # Another connection, as another service process would have, writes between pages.
    other = Database(gw.db.path)
    try:
        seen: list[int] = []
        inserted = 0
        params = {"user": "alice", "limit": "7", "order": order}
        while True:
            body = (await _get(gw, **params)).json()
            seen += [row["id"] for row in body["data"]]
            if body["next_cursor"] is None:
                break
            if inserted < 300:
                _seed(other, [("alice", "chat:create", "ok")] * 3)
                inserted += 3
            params["cursor"] = body["next_cursor"]
    finally:
        other.close()
    assert inserted > 0
    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert existing <= set(seen), "a row that existed before the walk was skipped"
    assert seen == sorted(seen, reverse=order == "desc")
    total = {r["id"] for r in gw.db.query("SELECT id FROM audit_log WHERE user_name='alice'")}
    if order == "asc":
        # Rows committed during the walk come after the ones before it: all of them seen.
        assert set(seen) == total
    else:
        assert set(seen) == existing  # newer rows are above the first page


@pytest.mark.parametrize("how", ["format", "accept"])
async def test_jsonl_export_streams_every_matching_row(make_gateway: MakeGateway, how: str) -> None:
    gw = await make_gateway()
    _seed(gw.db, [("alice", "chat:create", "ok")] * 1203 + [("bob", "chat:create", "ok")])
    if how == "format":
        response = await _get(gw, user="alice", format="jsonl")
    else:
        response = await gw.client.get(
            "/v1/audit",
            params={"user": "alice"},
            headers={**gw.auth("admin"), "Accept": "application/x-ndjson"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert len(rows) == 1203
    assert {r["user"] for r in rows} == {"alice"}
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids)  # an export is chronological
    read = gw.db.query("SELECT details FROM audit_log WHERE action = 'audit.read'")
    assert json.loads(read[0]["details"])["export"] is True
