"""TEST DOUBLE of Grafana's and Loki's HTTP APIs (not a feature), for the live check's tests.

Serves the answers services/monitoring/livecheck.py reads, in the shape Grafana 12 and
Loki 3 answer them (recorded from their documented responses: /api/search items carry
uid/title/type/folderTitle, /api/datasources items uid/name/type, a datasource health
answer {"status": "OK"|"ERROR", "message"}, Loki's query_range {"status", "data":
{"resultType": "streams", "result": [{"stream", "values"}]}}). Grafana's routes require
basic auth as the real server does. The real servers are checked by the monitoring job of
.github/workflows/ci.yml, which starts docker/compose.monitoring.yml.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class GrafanaLokiState:
    user: str = "admin"
    password: str = "admin"
    dashboards: dict[str, str] = field(default_factory=dict)  # uid -> title
    datasources: dict[str, str] = field(default_factory=dict)  # uid -> type
    unhealthy: dict[str, str] = field(default_factory=dict)  # uid -> error message
    log_lines: dict[str, int] = field(default_factory=dict)  # service -> lines held
    # service -> how many queries for it see no line first (Alloy shipping late)
    late: dict[str, int] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)


def grafana_loki_app(state: GrafanaLokiState) -> FastAPI:
    app = FastAPI()
    expected = "Basic " + base64.b64encode(f"{state.user}:{state.password}".encode()).decode()

    def unauthorized(request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != expected:
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        return None

    @app.get("/api/search")
    def search(request: Request, type: str = "") -> JSONResponse:
        if refused := unauthorized(request):
            return refused
        items = [
            {
                "id": number,
                "uid": uid,
                "title": title,
                "url": f"/d/{uid}/{title.lower().replace(' ', '-')}",
                "type": "dash-db",
                "tags": [],
                "isStarred": False,
                "folderUid": "local-ai-suite",
                "folderTitle": "Local AI Suite",
            }
            for number, (uid, title) in enumerate(state.dashboards.items(), start=1)
        ]
        return JSONResponse([i for i in items if not type or i["type"] == type])

    @app.get("/api/datasources")
    def datasources(request: Request) -> JSONResponse:
        if refused := unauthorized(request):
            return refused
        return JSONResponse(
            [
                {
                    "id": n,
                    "uid": uid,
                    "orgId": 1,
                    "name": uid.title(),
                    "type": kind,
                    "access": "proxy",
                }
                for n, (uid, kind) in enumerate(state.datasources.items(), start=1)
            ]
        )

    @app.get("/api/datasources/uid/{uid}/health")
    def health(request: Request, uid: str) -> JSONResponse:
        if refused := unauthorized(request):
            return refused
        if uid not in state.datasources:
            return JSONResponse({"message": "Data source not found"}, status_code=404)
        if uid in state.unhealthy:
            return JSONResponse(
                {"status": "ERROR", "message": state.unhealthy[uid]}, status_code=400
            )
        return JSONResponse({"status": "OK", "message": "Data source is working"})

    @app.get("/loki/api/v1/query_range")
    def query_range(query: str, limit: int = 100) -> JSONResponse:
        match = re.fullmatch(r'\{service="([^"]+)"\}', query)
        if not match:
            return JSONResponse({"message": f"parse error: {query}"}, status_code=400)
        service = match.group(1)
        state.queries[service] = state.queries.get(service, 0) + 1
        shipped = state.queries[service] > state.late.get(service, 0)
        lines = min(state.log_lines.get(service, 0), limit) if shipped else 0
        result = []
        if lines:
            values = [
                [str(1_700_000_000_000_000_000 + i), '{"level": "info"}'] for i in range(lines)
            ]
            result.append({"stream": {"service": service, "level": "info"}, "values": values})
        return JSONResponse(
            {"status": "success", "data": {"resultType": "streams", "result": result}}
        )

    return app
