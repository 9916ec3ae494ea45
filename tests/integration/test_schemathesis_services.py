"""Schemathesis against each service's own OpenAPI document, over a real socket.

For every operation the gateway, the MCP server and the RAG service publish at
``/openapi.json``, schemathesis generates requests from the schema and sends them with a
valid admin key. Two checks must hold for every response: no 5xx (``not_a_server_error``)
and, where the operation declares a response schema for the status it answered with, a
body that matches it (``response_schema_conformance``).

Each service runs once per module on a real loopback socket (``tests/support/live.py``)
with its data in a temporary folder; the gateway talks to the stub inference server
(``tests/stubs/inference.py``), the RAG service uses embedded Qdrant and hash embeddings.

Examples: the Hypothesis profile's count (root conftest.py), capped at ``MAX_EXAMPLES``
per operation, since each example is an HTTP round trip through a whole service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from services.mcp.app import create_app as create_mcp
from services.mcp.settings import McpSettings
from services.mcp.tools import build_tools
from services.rag.app import create_app as create_rag
from services.rag.settings import RagSettings
from tests.stubs.inference import create_stub_app
from tests.support.keys import make_key
from tests.support.live import serve_in_thread

MAX_EXAMPLES = 15
COLLECTION = "docs"
CHECKS = [not_a_server_error, response_schema_conformance]
BOUNDED = settings(
    settings.default,
    max_examples=min(settings.default.max_examples, MAX_EXAMPLES),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class Service:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.schema = schemathesis.openapi.from_url(f"{url}/openapi.json")


# None of the caller's settings leak in: the root conftest.py removes them for the run.


def _service(url: str, data_dir: Path) -> Service:
    return Service(url, make_key(data_dir / "security.db", "schema-admin", "admin"))


@pytest.fixture(scope="module")
def gateway_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("gateway") / "data"
    with serve_in_thread(create_stub_app()) as stub:
        settings_ = GatewaySettings(
            data_dir=data_dir,
            inference_url=f"{stub}/v1",
            upstream_backoff_seconds=0.01,
        )
        with serve_in_thread(create_gateway(settings_)) as url:
            yield _service(url, data_dir)


@pytest.fixture(scope="module")
def mcp_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("mcp")
    workspace = root / "workspace"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("hello\n")
    settings_ = McpSettings(data_dir=root / "data", workspace_roots=[workspace])
    with serve_in_thread(create_mcp(settings_)) as url:
        yield _service(url, root / "data")


@pytest.fixture(scope="module")
def rag_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("rag")
    settings_ = RagSettings(
        data_dir=root / "data", embedding_backend="hash", chunk_size=96, chunk_overlap=16
    )
    with serve_in_thread(create_rag(settings_)) as url:
        yield _service(url, root / "data")


def steer(case: schemathesis.Case, values: dict[str, str | None]) -> schemathesis.Case:
    """Replace generated fields (path parameters, or keys of a JSON object body) with
    values the service knows, so that cases get past the 404 for an unknown model, tool,
    approval or collection; a ``None`` value keeps the generated one."""
    for field, value in values.items():
        if value is None:
            continue
        if case.path_parameters and field in case.path_parameters:
            case.path_parameters[field] = value
        elif isinstance(case.body, dict) and field in case.body:
            case.body[field] = value
    return case


Known = dict[str, list[str]]


def run_schema(service: Service, prepare: Callable[[], Known]) -> list[str]:
    """Run every operation of ``service``'s schema, positive and negative cases, about half
    of each field steered to a known value (``prepare()``, called before each operation,
    sets the service up and names them); return the labels it ran. A failed check raises
    at once with schemathesis' report (the operation, the case, a curl line).
    """
    ran = []
    for result in service.schema.get_all_operations():
        operation = result.ok()
        cases = st.one_of(operation.as_strategy(mode) for mode in GenerationMode)
        known = prepare()
        choices = st.fixed_dictionaries(
            {
                field: st.one_of(st.none(), st.sampled_from(values))
                for field, values in known.items()
            }
        )

        @BOUNDED
        @given(case=st.builds(steer, cases, choices))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=service.headers, checks=CHECKS, timeout=30)

        check()
        ran.append(operation.label)
    return ran


def test_gateway_conforms_to_its_openapi(gateway_service: Service) -> None:
    ran = run_schema(gateway_service, lambda: {"model": ["chat", "code", "auto"]})
    assert "POST /v1/chat/completions" in ran


def test_mcp_conforms_to_its_openapi(mcp_service: Service) -> None:
    def prepare() -> Known:
        """A new pending approval before each operation (approve, reject and cancel use
        them up): a write_file call, which needs one even for an admin."""
        pending = httpx.post(
            f"{mcp_service.url}/tools/write_file/call",
            json={"arguments": {"path": "new.txt", "content": "x"}},
            headers=mcp_service.headers,
            timeout=30,
        )
        assert pending.status_code == 202, pending.text
        return {"name": list(build_tools()), "approval_id": [pending.json()["approval_id"]]}

    ran = run_schema(mcp_service, prepare)
    assert "POST /tools/{name}/call" in ran


def test_rag_conforms_to_its_openapi(rag_service: Service) -> None:
    def prepare() -> Known:
        """The collection again before each operation (DELETE /collections/{name} may have
        removed it), with one document in it."""
        httpx.post(
            f"{rag_service.url}/collections",
            json={"name": COLLECTION},
            headers=rag_service.headers,
            timeout=30,
        )
        indexed = httpx.post(
            f"{rag_service.url}/collections/{COLLECTION}/documents",
            json={"documents": [{"id": "doc-1", "text": "GPU drivers and backups."}]},
            headers=rag_service.headers,
            timeout=30,
        )
        assert indexed.status_code == 200, indexed.text
        return {"name": [COLLECTION], "document_id": ["doc-1"]}

    ran = run_schema(rag_service, prepare)
    assert "POST /query" in ran
