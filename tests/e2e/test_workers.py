"""`jaif serve --workers N`: every worker serves, meters and reports into one set of metrics, and on SIGTERM
finishes what is under way."""

from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, distinct, func, select

from jaif.db.engine import normalise_url
from jaif.metering.models import QuotaLease
from tests.support.procs import JAIF, free_port, jaif, last_line, server, started, upstream, wait_for

WAVE = 30
MAX_REQUESTS = 600


def requests_total(base: str) -> float:
    text = httpx.get(base + "/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "jaif_requests"
        for sample in family.samples
        if sample.name == "jaif_requests_total"
    )


def lease_holders(env) -> int:
    engine = create_engine(normalise_url(env["JAIF_DATABASE_URL"]))
    with engine.connect() as conn:
        count = conn.execute(select(func.count(distinct(QuotaLease.holder)))).scalar_one()
    engine.dispose()
    return count


def test_two_workers_share_metrics_and_meter_everything(jaif_env):
    jaif(jaif_env, "db", "upgrade")
    jaif(jaif_env, "org", "create", "Uni A", "--sector", "academia", "--country", "DE")
    jaif(jaif_env, "project", "create", "alpha", "--org", "Uni A", "--token-quota", "1000000")
    key = last_line(jaif(jaif_env, "key", "create", "--project", "alpha"))
    with upstream(jaif_env) as (url, _proc):
        jaif(jaif_env, "model", "add", "fake", "--upstream", url)
        with server(jaif_env, "--workers", "2") as base:
            body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
            headers = {"authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                # A new connection per request, so both workers get some; which worker accepts a
                # connection is the kernel's choice, so send waves until both have served (each
                # leases its own slice of the allowance: two lease holders).
                def call(_: int) -> int:
                    return httpx.post(base + "/v1/chat/completions", json=body, headers=headers).status_code

                statuses: list[int] = []
                with ThreadPoolExecutor(8) as pool:
                    while len(statuses) < MAX_REQUESTS and (not statuses or lease_holders(jaif_env) < 2):
                        statuses += pool.map(call, range(WAVE))
                sent = len(statuses)
                assert statuses == [200] * sent
                assert lease_holders(jaif_env) == 2, f"one worker served all {sent} requests"
                # Whichever worker answers the scrape, it reports the requests of both: a worker counts its
                # requests in batches (ops/metrics.py, FLUSH_AFTER_S), so the other's last few may take a
                # few milliseconds to show; from then on every scrape has them all.
                assert wait_for(lambda: requests_total(base), lambda total: total == sent) == sent
                assert [requests_total(base) for _ in range(6)] == [sent] * 6
                assert client.get("/healthz").json()["models"]["fake"]["healthy"] == 1
    # Both workers flushed their usage and gave back their leases when they stopped.
    usage = wait_for(lambda: json.loads(last_line(jaif(jaif_env, "usage", "--project", "alpha", "--json"))),
                     lambda u: u["requests"] == sent)
    assert usage["requests"] == sent
    assert usage["completion_tokens"] == 4 * sent
    assert usage["tokens_spent"] == usage["total_tokens"]
    assert usage["tokens_leased"] == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_lets_the_streams_under_way_finish(jaif_env, workers):
    """SIGTERM: no new connections, but a stream under way runs to its end, and it is metered (the
    workers' lifespan flushes usage and gives the leases back); then `jaif serve` exits with status 0,
    with one worker as with two."""
    jaif(jaif_env, "db", "upgrade")
    jaif(jaif_env, "org", "create", "Uni A", "--sector", "academia", "--country", "DE")
    jaif(jaif_env, "project", "create", "alpha", "--org", "Uni A", "--token-quota", "1000000")
    key = last_line(jaif(jaif_env, "key", "create", "--project", "alpha"))
    with upstream(jaif_env, "--chunk-delay-ms", "150") as (url, _proc):
        jaif(jaif_env, "model", "add", "slow", "--upstream", url)
        port = free_port()
        argv = [JAIF, "serve", "--port", str(port), "--workers", workers]
        with started(argv, jaif_env, f"http://127.0.0.1:{port}/healthz") as proc:
            body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10, "stream": True}
            headers = {"authorization": f"Bearer {key}"}
            with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body, headers=headers,
                              timeout=30) as response:
                lines = response.iter_lines()
                first = next(line for line in lines if line)
                proc.send_signal(signal.SIGTERM)  # the stream has 9 more events to go, 150 ms apart
                rest = [line for line in lines if line]
            assert response.status_code == 200 and first.startswith("data: ")
            assert rest[-1] == "data: [DONE]" and len(rest) >= 10
            assert proc.wait(timeout=40) == 0
    usage = wait_for(lambda: json.loads(last_line(jaif(jaif_env, "usage", "--project", "alpha", "--json"))),
                     lambda u: u["requests"] == 1)
    assert (usage["requests"], usage["completion_tokens"], usage["tokens_leased"]) == (1, 10, 0)
