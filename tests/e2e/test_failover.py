"""Failover between real upstream server processes behind `jaif serve`: a replica killed under load,
one answering 5xx, one brought back on its old port, and every replica down."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from types import SimpleNamespace

import httpx
import openai
import pytest

from tests.support.api import bearer, openai_error
from tests.support.databases import one_database
from tests.support.gateway import (
    FAST_ROUTING,
    add_model,
    create_key,
    healthz,
    metric,
    records_after,
    scrape,
    upstream_at,
    usage_records,
    wait_served,
)
from tests.support.procs import free_port, server, upstream, wait_for

pytestmark = one_database()
REQUESTS, CONCURRENCY, KILL_AFTER = 300, 16, 100
MESSAGES = [{"role": "user", "content": "route me somewhere"}]


@pytest.fixture(scope="module")
def gateway(module_env):
    """One `jaif serve` with fast health checks, cool-downs and registry refreshes; tests add models."""
    # A cool-down of five health-check intervals: a replica that stays down never slips back in between.
    env = {**module_env, **FAST_ROUTING, "JAIF_INFERENCE__COOLDOWN_S": "1.0", "JAIF_INFERENCE__PROBE_TIMEOUT_S": "1.0"}
    db = env["JAIF_DATABASE_URL"]
    key = create_key(db, project="failover", token_quota=100_000_000)
    with server(env) as base:
        yield SimpleNamespace(base=base, key=key, env=env, db=db)


def client_of(gateway) -> openai.OpenAI:
    # max_retries=0: the SDK must not hide a failed request by retrying it.
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=gateway.key, max_retries=0, timeout=15)


async def steady_load(gateway, model: str, *, kill_after: int, kill) -> list:
    """REQUESTS chat completions, CONCURRENCY at a time; ``kill()`` once ``kill_after`` have finished.
    Returns each request's reply or exception."""
    outcomes: list = []
    numbers = iter(range(REQUESTS))
    async with openai.AsyncOpenAI(
        base_url=gateway.base + "/v1", api_key=gateway.key, max_retries=0, timeout=30
    ) as client:

        async def worker() -> None:
            for i in numbers:
                try:
                    outcomes.append(
                        await client.chat.completions.create(
                            model=model, messages=[{"role": "user", "content": f"request {i}"}], max_tokens=4
                        )
                    )
                except openai.APIError as exc:
                    outcomes.append(exc)
                if len(outcomes) == kill_after:
                    kill()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return outcomes


def port_of(url: str) -> int:
    return httpx.URL(url).port


def test_killing_a_replica_under_load_fails_no_request_and_it_is_probed_back_in(gateway):
    env, base = gateway.env, gateway.base
    with upstream(env, "--delay-ms", "20") as (url_a, proc_a), upstream(env, "--delay-ms", "20") as (url_b, _):
        add_model(gateway.db, "fo-chat", [url_a, url_b])
        wait_served(base, "fo-chat", replicas=2)

        outcomes = asyncio.run(steady_load(gateway, "fo-chat", kill_after=KILL_AFTER, kill=proc_a.kill))

        assert proc_a.wait(5) == -9
        failed = [o for o in outcomes if isinstance(o, Exception)]
        assert not failed, f"{len(failed)} of {REQUESTS} failed, first: {failed[0]!r}"
        assert len(outcomes) == REQUESTS
        assert all(r.choices[0].message.content == "tok0 tok1 tok2 tok3" for r in outcomes)
        # The kill cut requests short on A; jaif retried them on B.
        assert metric(scrape(base), "jaif_replica_failures_total", model="fo-chat", replica=url_a) >= 1

        # Every request was metered exactly once, with the tokens its client was told.
        records = records_after(gateway.db, model="fo-chat", count=REQUESTS)
        assert {r.status for r in records} == {"ok"}
        assert sum(r.prompt_tokens for r in records) == sum(o.usage.prompt_tokens for o in outcomes)
        assert sum(r.completion_tokens for r in records) == sum(o.usage.completion_tokens for o in outcomes)
        served = Counter(r.replica for r in records)
        assert served[url_a] > 0 and served[url_b] > 0 and served[url_a] + served[url_b] == REQUESTS

        # While A is down its health checks fail, so it stays out of rotation.
        assert healthz(base)["models"]["fo-chat"] == {"replicas": 2, "healthy": 1}
        healthy_a = wait_for(
            lambda: metric(scrape(base), "jaif_replica_healthy", model="fo-chat", replica=url_a), lambda v: v == 0
        )
        assert healthy_a == 0

        # A comes back on its old port: the health checks bring it back into rotation.
        with upstream_at(port_of(url_a), env, "--delay-ms", "20"):
            healthy_a = wait_for(
                lambda: metric(scrape(base), "jaif_replica_healthy", model="fo-chat", replica=url_a),
                lambda v: v == 1,
            )
            assert healthy_a == 1
            assert healthz(base)["models"]["fo-chat"] == {"replicas": 2, "healthy": 2}
            with client_of(gateway) as client:  # different conversations: prefix affinity spreads them
                for i in range(30):
                    messages = [{"role": "user", "content": f"conversation {i}"}]
                    client.chat.completions.create(model="fo-chat", messages=messages, max_tokens=2)
            records = records_after(gateway.db, model="fo-chat", count=REQUESTS + 30)
            assert Counter(r.replica for r in records[-30:])[url_a] >= 3  # it receives requests again


def test_a_replica_answering_5xx_is_routed_around(gateway):
    env, base = gateway.env, gateway.base
    with upstream(env) as (good, _), upstream(env, "--status", "500") as (bad, _):
        add_model(gateway.db, "fx-chat", [bad, good])
        wait_served(base, "fx-chat", replicas=2)
        with client_of(gateway) as client:
            for _ in range(20):
                reply = client.chat.completions.create(model="fx-chat", messages=MESSAGES, max_tokens=3)
                assert reply.choices[0].message.content == "tok0 tok1 tok2"
            for _ in range(4):
                chunks = list(
                    client.chat.completions.create(model="fx-chat", messages=MESSAGES, max_tokens=3, stream=True)
                )
                assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok0 tok1 tok2"

        records = records_after(gateway.db, model="fx-chat", count=24)
        assert {(r.status, r.replica) for r in records} == {("ok", good)}
        assert metric(scrape(base), "jaif_replica_failures_total", model="fx-chat", replica=bad) >= 1


def test_every_replica_down_is_a_503_with_retry_after(gateway):
    base = gateway.base
    refusing = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]  # nothing listens there
    add_model(gateway.db, "down-chat", refusing)
    wait_served(base, "down-chat", replicas=2)
    body = {"model": "down-chat", "messages": MESSAGES, "max_tokens": 3}

    response = httpx.post(base + "/v1/chat/completions", headers=bearer(gateway.key), json=body, timeout=15)
    error = openai_error(response, 503, code="service_unavailable")
    assert "down-chat" in error["message"]
    assert int(response.headers["retry-after"]) >= 1

    streamed = httpx.post(
        base + "/v1/chat/completions", headers=bearer(gateway.key), json={**body, "stream": True}, timeout=15
    )
    openai_error(streamed, 503, code="service_unavailable")  # refused before the stream began
    assert int(streamed.headers["retry-after"]) >= 1

    with client_of(gateway) as client, pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="down-chat", messages=MESSAGES)
    assert info.value.status_code == 503
    assert int(info.value.response.headers["retry-after"]) >= 1

    records = records_after(gateway.db, model="down-chat", count=3)
    assert {(r.status, r.status_code, r.prompt_tokens + r.completion_tokens) for r in records} == {("error", 503, 0)}
    assert len(usage_records(gateway.db, model="down-chat")) == 3


def test_an_engine_s_error_answer_is_passed_on_and_its_only_replica_stays_in(gateway):
    """Issue 13: one 500 from the only replica of a model reached the client as a 503 and took the model
    away from everyone for the cool-down. Now the client gets the engine's answer (its status and
    message, in the OpenAI shape), and the next request is served at once."""
    env, base = gateway.env, gateway.base
    with upstream(env, "--error-on", "crash the engine") as (url, _):
        add_model(gateway.db, "one-500", [url])
        wait_served(base, "one-500", replicas=1)
        failing = {"model": "one-500", "messages": [{"role": "user", "content": "crash the engine"}], "max_tokens": 3}
        for stream in (False, True):
            response = httpx.post(
                base + "/v1/chat/completions", headers=bearer(gateway.key), json={**failing, "stream": stream},
                timeout=15,
            )
            error = openai_error(response, 500, code="upstream_error")
            assert error["message"] == "stand-in answers 500"
            with client_of(gateway) as client:  # at once: no cool-down, no retry
                reply = client.chat.completions.create(model="one-500", messages=MESSAGES, max_tokens=3)
            assert reply.choices[0].message.content == "tok0 tok1 tok2"

        records = records_after(gateway.db, model="one-500", count=4)
        assert [(r.status, r.status_code) for r in records] == [("error", 500), ("ok", 200)] * 2
        assert healthz(base)["models"]["one-500"] == {"replicas": 1, "healthy": 1}


def test_an_error_answer_is_retried_on_another_replica_which_stays_in(gateway):
    """A 500 from one replica: the request is served by another, and the replica that answered with an
    error stays in rotation (one error answer is no outage): the next requests reach it again."""
    env, base = gateway.env, gateway.base
    with upstream(env, "--error-on", "flaky") as (flaky, _), upstream(env) as (steady, _):
        add_model(gateway.db, "fx-once", [flaky, steady])
        wait_served(base, "fx-once", replicas=2)

        def failures() -> float:
            return metric(scrape(base), "jaif_replica_failures_total", model="fx-once", replica=flaky) or 0

        with client_of(gateway) as client:
            # Prefix affinity sends each conversation to one replica: until one goes to the flaky one first.
            tries = 0
            while tries < 12 and not failures():
                tries += 1
                messages = [{"role": "user", "content": f"flaky conversation {tries}"}]
                reply = client.chat.completions.create(model="fx-once", messages=messages, max_tokens=3)
                assert reply.choices[0].message.content == "tok0 tok1 tok2"
            assert failures() == 1
            for i in range(20):
                messages = [{"role": "user", "content": f"conversation {i}"}]
                reply = client.chat.completions.create(model="fx-once", messages=messages, max_tokens=3)
                assert reply.choices[0].message.content == "tok0 tok1 tok2"
        records = records_after(gateway.db, model="fx-once", count=tries + 20)
        assert {r.status for r in records} == {"ok"}
        assert records[tries - 1].replica == steady  # the flaky one answered 500 first
        assert Counter(r.replica for r in records[tries:])[flaky] >= 3  # and was not taken out


def test_a_replica_busy_with_a_long_request_stays_in_rotation(gateway):
    """An engine that answers one request at a time (llama-cpp-python's server; the stand-in with --serial)
    queued the gateway's health check behind a long generation; the check timed out and took the healthy
    replica out of rotation, so the next request got a 503. A replica with requests in flight is not checked."""
    env, base = gateway.env, gateway.base
    with upstream(env, "--serial", "--delay-ms", "3000") as (url, _):
        add_model(gateway.db, "one-slot", [url])
        wait_served(base, "one-slot", replicas=1)
        with client_of(gateway) as client:
            import threading

            done: list = []
            slow = threading.Thread(target=lambda: done.append(client.chat.completions.create(
                model="one-slot", messages=MESSAGES, max_tokens=3)))
            slow.start()
            time.sleep(2.5)  # many health-check intervals (0.2 s), each longer than the probe timeout (1 s)
            assert healthz(base)["models"]["one-slot"] == {"replicas": 1, "healthy": 1}
            slow.join(10)
            assert done and done[0].choices[0].message.content
            reply = client.chat.completions.create(model="one-slot", messages=MESSAGES, max_tokens=3)
            assert reply.choices[0].message.content
