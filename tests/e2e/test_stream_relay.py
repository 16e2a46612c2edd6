"""Streams through `jaif serve` from real upstream processes: passed on chunk by chunk, never buffered;
a stream that breaks mid-way ends with an error event (not a hang); one that breaks before its first
event is retried on another replica."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import httpx
import openai
import pytest

from tests.support.api import bearer, sse_payloads
from tests.support.databases import one_database
from tests.support.gateway import FAST_ROUTING, add_model, create_key, metric, records_after, scrape, wait_served
from tests.support.openai_schema import assert_valid
from tests.support.procs import server, upstream

pytestmark = one_database()
MESSAGES = [{"role": "user", "content": "tell me a story"}]
BREAK_AFTER = 3
CHUNK_DELAY_S, SLOW_TOKENS = 0.2, 6
REQUESTS_FIRST = 16


@pytest.fixture(scope="module")
def gateway(module_env):
    env = {**module_env, **FAST_ROUTING}
    db = env["JAIF_DATABASE_URL"]
    key = create_key(db, project="streams")
    with (
        upstream(env, "--break-after", str(BREAK_AFTER), "--tokens", "8") as (breaking, _),
        upstream(env, "--break-after", "0") as (dead_on_arrival, _),
        upstream(env) as (healthy, _),
        upstream(env, "--chunk-delay-ms", str(CHUNK_DELAY_S * 1000), "--tokens", str(SLOW_TOKENS)) as (slow, _),
        server(env) as base,
    ):
        models = {
            "breaks-raw": [breaking],
            "breaks-sdk": [breaking],
            "breaks-first": [dead_on_arrival, healthy],
            "slow-chat": [slow],
        }
        for name, urls in models.items():
            add_model(db, name, urls)
        for name, urls in models.items():
            wait_served(base, name, replicas=len(urls))
        yield SimpleNamespace(
            base=base, key=key, db=db, healthy=healthy, dead_on_arrival=dead_on_arrival, breaking=breaking
        )


def client_of(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=gateway.key, max_retries=0, timeout=10)


def test_a_stream_that_breaks_midway_ends_with_an_error_event(gateway):
    body = {"model": "breaks-raw", "messages": MESSAGES, "max_tokens": 8, "stream": True}
    # A read timeout on the client: a hung stream fails the test instead of hanging it.
    response = httpx.post(
        gateway.base + "/v1/chat/completions", headers=bearer(gateway.key), json=body, timeout=httpx.Timeout(10.0)
    )
    assert response.status_code == 200  # the stream had begun when it broke
    payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    chunks, error = [json.loads(p) for p in payloads[:BREAK_AFTER]], json.loads(payloads[BREAK_AFTER])
    assert len(payloads) == BREAK_AFTER + 2
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "tok0 tok1 tok2"
    assert_valid(error, "ErrorResponse")
    assert error["error"]["type"] == "upstream_error"
    assert "mid-stream" in error["error"]["message"]

    (record,) = records_after(gateway.db, model="breaks-raw", count=1)
    assert (record.status, record.status_code, record.stream) == ("error", 502, True)
    # The upstream never sent its usage: jaif metered what reached the client itself.
    assert record.usage_source != "upstream" and record.completion_tokens >= BREAK_AFTER
    failures = metric(scrape(gateway.base), "jaif_replica_failures_total", model="breaks-raw", replica=gateway.breaking)
    assert failures == 1


def test_the_openai_sdk_raises_on_a_broken_stream_instead_of_hanging(gateway):
    received = []
    started = time.monotonic()
    with client_of(gateway) as client, pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in client.chat.completions.create(model="breaks-sdk", messages=MESSAGES, max_tokens=8, stream=True):
            received.append(chunk.choices[0].delta.content)
    assert "".join(received) == "tok0 tok1 tok2"
    assert time.monotonic() - started < 5
    (record,) = records_after(gateway.db, model="breaks-sdk", count=1)
    assert record.status == "error"


def test_a_stream_that_breaks_before_its_first_event_is_retried_elsewhere(gateway):
    with client_of(gateway) as client:
        # Different conversations: prefix affinity sends one conversation to one replica, and these should
        # meet the broken one (each of the 16 goes to either replica first, as its prefix hashes).
        for i in range(REQUESTS_FIRST):
            stream = client.chat.completions.create(
                model="breaks-first",
                messages=[{"role": "user", "content": f"conversation {i}"}],
                max_tokens=5,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = list(stream)
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok0 tok1 tok2 tok3 tok4"
            assert chunks[-1].usage.completion_tokens == 5
    records = records_after(gateway.db, model="breaks-first", count=REQUESTS_FIRST)
    assert {(r.status, r.replica) for r in records} == {("ok", gateway.healthy)}
    failed = metric(scrape(gateway.base), "jaif_replica_failures_total", replica=gateway.dead_on_arrival)
    assert failed >= 1  # it was tried, and its streams went elsewhere


def test_chunks_are_passed_on_as_they_are_produced(gateway):
    """The upstream sleeps between chunks: the first reaches the client long before the last is made."""
    arrivals = []
    started = time.perf_counter()
    with client_of(gateway) as client:
        for chunk in client.chat.completions.create(
            model="slow-chat", messages=MESSAGES, max_tokens=SLOW_TOKENS, stream=True
        ):
            arrivals.append((time.perf_counter() - started, chunk.choices[0].delta.content))
    total = time.perf_counter() - started
    produced = (SLOW_TOKENS - 1) * CHUNK_DELAY_S  # when the upstream writes its last chunk

    assert [text for _, text in arrivals] == ["tok0"] + [f" tok{i}" for i in range(1, SLOW_TOKENS)]
    first, last = arrivals[0][0], arrivals[-1][0]
    assert total >= produced
    assert first < produced / 3, f"first chunk after {first:.3f} s of {total:.3f} s"
    # Each chunk arrives about when it is made, not in a burst at the end.
    assert last - first >= 0.8 * produced
    gaps = sorted(b - a for (a, _), (b, _) in zip(arrivals, arrivals[1:], strict=False))
    assert gaps[len(gaps) // 2] > CHUNK_DELAY_S / 2, gaps
