"""x-request-id: on every /v1 answer, errors included; the client's own kept where sane; passed to the
upstream; stored on the usage record, so that a client can match a call to its charge. A real
`jaif serve` in front of the stand-in upstream (which notes the x-request-id of each POST), driven by
the official `openai` SDK."""

from __future__ import annotations

import re
from types import SimpleNamespace

import httpx
import openai
import pytest
from sqlalchemy import select

from jaif.db.engine import make_engine, make_session_factory
from jaif.inference.gateway import as_uuid
from jaif.metering.models import UsageRecord
from tests.support.api import bearer
from tests.support.databases import one_database
from tests.support.gateway import add_model, create_key, wait_served
from tests.support.procs import server, upstream, wait_for

pytestmark = one_database()
HELLO = [{"role": "user", "content": "hello there"}]
GATEWAY_ID = re.compile(r"[0-9a-f]{28}")


@pytest.fixture(scope="module")
def gateway(module_env):
    db = module_env["JAIF_DATABASE_URL"]
    key = create_key(db, project="ids", token_quota=1_000_000)
    with upstream(module_env, "--record-request-ids") as (url, _), server(module_env) as base:
        add_model(db, "rid-chat", [url])
        add_model(db, "rid-embed", [url], kind="embedding")
        wait_served(base, "rid-embed", replicas=1)
        client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
        engine = make_engine(db)
        yield SimpleNamespace(base=base, key=key, client=client, upstream=url, sessions=make_session_factory(engine))
        client.close()
        engine.dispose()


def upstream_saw(gateway) -> str | None:
    """The x-request-id of the last POST the stand-in upstream received."""
    seen = httpx.get(gateway.upstream + "/request-ids", timeout=5).json()["request_ids"]
    return seen[-1] if seen else None


def record(gateway, **where) -> UsageRecord:
    """The one usage record matching ``where`` (the server flushes in batches)."""

    def find() -> list[UsageRecord]:
        with gateway.sessions() as session:
            query = select(UsageRecord).filter_by(**where)
            return list(session.scalars(query))

    rows = wait_for(find, lambda r: len(r) > 0, timeout=10)
    assert len(rows) == 1, f"{len(rows)} usage records with {where}"
    return rows[0]


def test_the_gateways_id_is_on_the_answer_the_upstream_and_the_usage_record(gateway):
    raw = gateway.client.chat.completions.with_raw_response.create(model="rid-chat", messages=HELLO, max_tokens=3)
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]
    assert GATEWAY_ID.fullmatch(request_id), request_id
    assert completion._request_id == request_id  # what the SDK shows its users
    assert upstream_saw(gateway) == as_uuid(request_id)  # the same digits, as a UUID (llama-cpp-python's server)
    assert as_uuid(request_id).replace("-", "").endswith(request_id)
    charged = record(gateway, id=request_id)
    assert charged.client_request_id is None and charged.completion_tokens == 3


def test_the_clients_own_id_is_kept(gateway):
    mine = "trace-2026.12.04:abc_42"
    raw = gateway.client.chat.completions.with_raw_response.create(
        model="rid-chat", messages=HELLO, max_tokens=2, extra_headers={"x-request-id": mine}
    )
    assert raw.headers["x-request-id"] == mine
    charged = record(gateway, client_request_id=mine)
    assert upstream_saw(gateway) == as_uuid(charged.id)  # not a UUID: the upstream gets the gateway's id
    uuid_id = "7f3c1b2e-4d5a-4b6c-8d9e-0a1b2c3d4e5f"
    gateway.client.chat.completions.create(model="rid-chat", messages=HELLO, max_tokens=2,
                                           extra_headers={"x-request-id": uuid_id})
    assert upstream_saw(gateway) == uuid_id  # a UUID of the client's own is passed on
    assert GATEWAY_ID.fullmatch(charged.id) and charged.completion_tokens == 2


@pytest.mark.parametrize("bad", ["x" * 129, "two words", "semi;colon", "<script>", "é"])
def test_an_insane_client_id_is_replaced(gateway, bad):
    response = httpx.post(
        gateway.base + "/v1/embeddings",
        json={"model": "rid-embed", "input": "hi"},
        headers={**bearer(gateway.key), "x-request-id": bad.encode()},
        timeout=10,
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert GATEWAY_ID.fullmatch(request_id) and upstream_saw(gateway) == as_uuid(request_id)


def test_streams_carry_the_id(gateway):
    with gateway.client.chat.completions.with_streaming_response.create(
        model="rid-chat", messages=HELLO, max_tokens=2, stream=True, extra_headers={"x-request-id": "stream-1"}
    ) as response:
        assert response.headers["x-request-id"] == "stream-1"
        chunks = list(response.parse())
    assert chunks
    charged = record(gateway, client_request_id="stream-1")
    assert charged.stream and upstream_saw(gateway) == as_uuid(charged.id)


def test_errors_carry_the_id(gateway):
    # Refused by the gateway (SDK errors expose it as request_id): unknown model, bad input, bad key.
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert GATEWAY_ID.fullmatch(caught.value.request_id or "")
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client.chat.completions.create(model="rid-chat", messages=HELLO, extra_headers={"x-request-id": "e-1"},
                                               temperature=9)  # fmt: skip
    assert caught.value.request_id == "e-1"
    stranger = openai.OpenAI(base_url=gateway.base + "/v1", api_key="jaif-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        stranger.embeddings.create(model="rid-embed", input="x")
    assert GATEWAY_ID.fullmatch(caught.value.request_id or "")
    stranger.close()


@pytest.mark.parametrize(
    "method,path,status",
    [("GET", "/v1/models", 200), ("GET", "/v1/models/rid-chat", 200), ("GET", "/v1/nowhere", 404),
     ("GET", "/v1/chat/completions", 405)],
)  # fmt: skip
def test_every_other_v1_answer_carries_an_id(gateway, method, path, status):
    response = httpx.request(method, gateway.base + path, headers=bearer(gateway.key), timeout=10)
    assert response.status_code == status
    assert GATEWAY_ID.fullmatch(response.headers["x-request-id"])
    mine = httpx.request(method, gateway.base + path, headers={**bearer(gateway.key), "x-request-id": "m-1"})
    assert mine.headers["x-request-id"] == "m-1"


def test_a_body_refused_before_the_endpoint_carries_an_id(gateway):
    response = httpx.post(
        gateway.base + "/v1/chat/completions",
        content=b"{" + b" " * (5 * 1024 * 1024) + b"}",
        headers={**bearer(gateway.key), "content-type": "application/json", "x-request-id": "big-1"},
        timeout=30,
    )
    assert response.status_code == 413 and response.headers["x-request-id"] == "big-1"


def test_portal_pages_carry_none(gateway):
    assert "x-request-id" not in httpx.get(gateway.base + "/healthz", timeout=5).headers
