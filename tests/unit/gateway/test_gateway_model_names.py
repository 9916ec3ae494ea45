"""Model names are free text: any name gets the upstream's answer, never a gateway 500.

Schemathesis found 310 names (``"한국어-모델"`` and the like) that the gateway turned into a
500, because the alias went into the ``X-Model`` response header, which must be Latin-1.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway.proxy import header_value
from tests.stubs.inference import create_stub_app
from tests.unit.gateway.conftest import UPSTREAM, Gateway, MakeGateway

HOST = "upstream.test"
# A header value h11 (uvicorn) accepts: visible ASCII, no edge spaces, no control characters.
VALID_HEADER = re.compile(r"[!-~]*")


async def test_a_korean_model_name_is_forwarded_and_gets_the_upstreams_404(
    make_gateway: MakeGateway,
):
    gw = await make_gateway({HOST: create_stub_app()}, inference_url=UPSTREAM)
    for call in (gw.chat, gw.complete, gw.embed):
        response = await call("한국어-모델")
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "model_not_found"
        assert "한국어-모델" in response.json()["error"]["message"]
        assert VALID_HEADER.fullmatch(response.headers["X-Model"])
        assert unquote(response.headers["X-Model"]) == "한국어-모델"
    sent = [json.loads(r.content)["model"] for r in gw.router.sent if r.method == "POST"]
    assert sent == ["한국어-모델"] * 3  # forwarded as is in the JSON body


async def test_a_streamed_request_with_a_non_latin1_name_is_not_a_500(make_gateway: MakeGateway):
    gw = await make_gateway({HOST: create_stub_app()}, inference_url=UPSTREAM)
    response = await gw.chat("模型 ✓", stream=True)
    assert response.status_code == 404
    assert unquote(response.headers["X-Model"]) == "模型 ✓"


@given(text=st.text())
def test_header_value_is_a_valid_header_and_decodes_back(text: str) -> None:
    value = header_value(text)
    assert VALID_HEADER.fullmatch(value)
    assert unquote(value) == text


_gateways: dict[int, Gateway] = {}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.text())
async def test_no_model_name_makes_the_gateway_answer_5xx(make_gateway: MakeGateway, model: str):
    gw = _gateways.get(id(make_gateway))
    if gw is None:  # one gateway per test run, not per example
        _gateways.clear()
        gw = _gateways[id(make_gateway)] = await make_gateway(
            {HOST: create_stub_app()}, inference_url=UPSTREAM
        )
    response = await gw.chat(model)
    assert response.status_code < 500, response.text
    for name in ("X-Model", "X-Backend"):
        if name in response.headers:
            assert VALID_HEADER.fullmatch(response.headers[name])
