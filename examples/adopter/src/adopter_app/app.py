"""The notes service: standard-library HTTP server, SQLite file, Prometheus metrics.

Routes: ``GET /health``, ``GET /notes``, ``POST /notes`` (JSON ``{"text": ...}``),
``GET /metrics``. Each request opens its own SQLite connection, as most web code
does: a test may reset the file between requests (the online backup API) and the
next request sees the reset database.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

SCHEMA = files("adopter_app").joinpath("schema.sql").read_text(encoding="utf-8")
MAX_BODY = 64 * 1024
ROUTES = ("/health", "/notes", "/metrics")


def connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, timeout=5)
    conn.execute("PRAGMA journal_mode = WAL")
    return conn


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Labels stay bounded: the route is one of ROUTES or "other".
        self.requests = Counter(
            "notes_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.created = Counter("notes_created_total", "Notes created.", registry=self.registry)


class NotesServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], db: Path) -> None:
        self.db = db
        self.metrics = Metrics()
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    server: NotesServer

    def log_message(self, format: str, *args: object) -> None:
        # One line per request on stdout: the stack plugin attaches it to a failing test.
        print(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}", flush=True)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        route = self.path if self.path in ROUTES else "other"
        self.server.metrics.requests.labels(route, self.command, str(status.value)).inc()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, payload: object) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/metrics":
            exposition = generate_latest(self.server.metrics.registry)
            self._send(HTTPStatus.OK, exposition, CONTENT_TYPE_LATEST)
        elif self.path == "/notes":
            with closing(connect(self.server.db)) as conn:
                rows = conn.execute("SELECT id, text FROM notes ORDER BY id").fetchall()
            self._json(HTTPStatus.OK, [{"id": i, "text": t} for i, t in rows])
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        if self.path != "/notes":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body over 64 KiB"})
            return
        try:
            text = json.loads(self.rfile.read(length))["text"]
        except (ValueError, KeyError, TypeError):
            text = None
        if not isinstance(text, str) or not text:
            self._json(HTTPStatus.BAD_REQUEST, {"error": 'send JSON {"text": "..."}'})
            return
        with closing(connect(self.server.db)) as conn, conn:
            note_id = conn.execute("INSERT INTO notes (text) VALUES (?)", (text,)).lastrowid
        self.server.metrics.created.inc()
        self._json(HTTPStatus.CREATED, {"id": note_id, "text": text})


def make_server(host: str, port: int, db: Path) -> NotesServer:
    """The server, with the schema applied to ``db`` (created if missing)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with closing(connect(db)) as conn:
        conn.executescript(SCHEMA)
    return NotesServer((host, port), db)
