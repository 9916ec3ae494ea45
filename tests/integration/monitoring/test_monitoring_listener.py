"""The alert listener on a real socket: Alertmanager-shaped webhooks in, one readable line
per alert out. Parsing alone: tests/unit/monitoring/test_monitoring_webhook.py."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import httpx
import pytest

from services.monitoring.alerts_listener import (
    MAX_BODY_BYTES,
    AlertListener,
)


def webhook(status: str = "firing", **labels: str) -> dict[str, Any]:
    """The body Alertmanager posts (webhook format version 4)."""
    labels = {"alertname": "ServiceDown", "service": "gateway", "severity": "critical", **labels}
    return {
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="ServiceDown", service="gateway"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "critical",
        "groupLabels": {"alertname": labels["alertname"], "service": labels["service"]},
        "commonLabels": labels,
        "commonAnnotations": {"summary": f"{labels['service']} is down"},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": f"{labels['service']} is down"},
                "startsAt": "2026-01-01T10:00:00Z",
                "endsAt": (
                    "2026-01-01T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
                ),
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": f"fp-{labels['service']}",
            }
        ],
    }


@pytest.fixture
def listener() -> Any:
    lines: list[str] = []
    with AlertListener(on_notification=lambda n: lines.append(n.line())) as running:
        running.lines = lines
        yield running


@pytest.fixture(scope="module")
def client() -> Any:
    # One client for every request (httpx clients are thread-safe; building one is slow).
    with httpx.Client(trust_env=False) as shared:
        yield shared


def post(client: httpx.Client, listener: AlertListener, body: Any, path: str = "/alerts") -> Any:
    return client.post(listener.url.replace("/alerts", path), json=body)


def test_firing_then_resolved_prints_one_line_each(client: httpx.Client, listener: Any) -> None:
    assert post(client, listener, webhook("firing")).json() == {"received": 1}
    assert post(client, listener, webhook("resolved")).status_code == 200
    firing, resolved = listener.lines
    assert " FIRING " in firing
    assert firing.endswith("ServiceDown service=gateway severity=critical: gateway is down")
    assert " RESOLVED " in resolved
    assert datetime.fromisoformat(firing.split()[0].replace("Z", "+00:00")).tzinfo is not None
    got = listener.wait_for(alertname="ServiceDown", status="resolved", service="gateway")
    assert got.ends_at == "2026-01-01T10:05:00Z"
    assert got.receiver == "critical"


def test_repeats_are_marked(client: httpx.Client, listener: Any) -> None:
    post(client, listener, webhook("firing"))
    post(client, listener, webhook("firing"))
    post(client, listener, webhook("firing", service="rag"))
    assert [n.repeat for n in listener.received] == [False, True, False]
    assert "FIRING (repeat)" in listener.lines[1]


def test_concurrent_posts_are_all_kept(client: httpx.Client, listener: Any) -> None:
    services = [f"svc{i}" for i in range(20)]
    threads = [
        threading.Thread(target=post, args=(client, listener, webhook(service=s))) for s in services
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(n.service for n in listener) == sorted(services)


def test_wait_for_times_out_listing_what_arrived(client: httpx.Client, listener: Any) -> None:
    post(client, listener, webhook("firing"))
    with pytest.raises(TimeoutError, match="ServiceDown service=gateway"):
        listener.wait_for(alertname="High5xxRatio", timeout=0.05)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("not json", 400, "Expecting value"),
        ({"alerts": "x"}, 400, "no 'alerts' list"),
        ({"alerts": [{"status": "weird"}]}, 400, "firing or resolved"),
        ({"alerts": [1]}, 400, "must be an object"),
        ({"alerts": [{"status": "firing", "labels": []}]}, 400, "labels must be an object"),
    ],
)
def test_bad_bodies_are_refused(
    client: httpx.Client, listener: Any, body: Any, status: int, message: str
) -> None:
    if isinstance(body, str):
        response = client.post(listener.url, content=body)
    else:
        response = client.post(listener.url, json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert listener.received == []


def test_other_paths_size_and_health(client: httpx.Client, listener: Any) -> None:
    assert post(client, listener, webhook(), path="/other").status_code == 404
    base = listener.url.removesuffix("/alerts")
    assert client.get(f"{base}/health").json() == {"status": "ok"}
    assert client.get(f"{base}/alerts").status_code == 404
    big = client.post(listener.url, content=b"x" * (MAX_BODY_BYTES + 1))
    assert big.status_code == 413
    no_length = client.post(
        listener.url, content=iter([b"{}"]), headers={"Transfer-Encoding": "chunked"}
    )
    assert no_length.status_code == 411


def test_serve_forever_and_shutdown(client: httpx.Client) -> None:
    listener = AlertListener(port=0)
    thread = threading.Thread(target=listener.serve_forever)
    thread.start()
    post(client, listener, webhook())
    listener.shutdown()
    thread.join()
    assert len(listener.received) == 1
