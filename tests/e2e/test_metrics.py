"""GET /metrics (Prometheus text format, parsed as Prometheus does) and GET /healthz of `jaif serve`."""

from __future__ import annotations

from types import SimpleNamespace

import openai
import pytest

from tests.support.databases import one_database
from tests.support.gateway import (
    FAST_ROUTING,
    add_model,
    create_key,
    healthz,
    metric,
    records_after,
    scrape,
    wait_served,
)
from tests.support.procs import free_port, server, upstream, wait_for

pytestmark = one_database()
MESSAGES = [{"role": "user", "content": "count my tokens please"}]


@pytest.fixture(scope="module")
def gateway(module_env):
    env = {**module_env, **FAST_ROUTING}
    db = env["JAIF_DATABASE_URL"]
    key = create_key(db, project="metrics")
    with upstream(env) as (one, _), upstream(env) as (two, _), server(env) as base:
        down = f"http://127.0.0.1:{free_port()}/v1"  # refuses connections
        add_model(db, "m-chat", [one, two])
        add_model(db, "m-embed", [one], kind="embedding", context_length=512)
        add_model(db, "m-down", [down])
        for name, replicas in (("m-chat", 2), ("m-embed", 1), ("m-down", 1)):
            wait_served(base, name, replicas=replicas)
        yield SimpleNamespace(base=base, key=key, db=db, one=one, two=two, down=down)


def traffic(gateway) -> dict[str, dict[str, int]]:
    """Chat, completions, streams of both and embeddings; returns the usage the clients were told."""
    told = {"m-chat": {"prompt": 0, "completion": 0}, "m-embed": {"prompt": 0, "completion": 0}}

    def add(model: str, usage) -> None:
        told[model]["prompt"] += usage.prompt_tokens
        told[model]["completion"] += getattr(usage, "completion_tokens", 0) or 0

    with openai.OpenAI(base_url=gateway.base + "/v1", api_key=gateway.key, max_retries=0, timeout=10) as client:
        for n in (2, 3, 4):
            add("m-chat", client.chat.completions.create(model="m-chat", messages=MESSAGES, max_tokens=n).usage)
        for n in (1, 5):
            add("m-chat", client.completions.create(model="m-chat", prompt="once upon a time", max_tokens=n).usage)
        options = {"stream": True, "stream_options": {"include_usage": True}}
        for n in (3, 6):
            chunks = list(client.chat.completions.create(model="m-chat", messages=MESSAGES, max_tokens=n, **options))
            add("m-chat", chunks[-1].usage)
        chunks = list(client.completions.create(model="m-chat", prompt="a b c", max_tokens=2, **options))
        add("m-chat", chunks[-1].usage)
        for text in ("one two three", ["four five", "six"]):
            add("m-embed", client.embeddings.create(model="m-embed", input=text).usage)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m-down", messages=MESSAGES)
    return told


def test_metrics_count_requests_tokens_latency_and_replica_health(gateway):
    told = traffic(gateway)
    samples = scrape(gateway.base)

    def requests(model: str, endpoint: str, status: str) -> float | None:
        return metric(samples, "jaif_requests_total", model=model, endpoint=endpoint, status=status)

    assert requests("m-chat", "chat.completions", "ok") == 5
    assert requests("m-chat", "completions", "ok") == 3
    assert requests("m-embed", "embeddings", "ok") == 2
    assert requests("m-down", "chat.completions", "error") == 1
    assert requests("m-chat", "chat.completions", "error") is None

    # Token counters equal what the clients were told, and what the usage ledger holds.
    for model in ("m-chat", "m-embed"):
        assert metric(samples, "jaif_tokens_total", model=model, kind="prompt") == told[model]["prompt"] > 0
    assert metric(samples, "jaif_tokens_total", model="m-chat", kind="completion") == told["m-chat"]["completion"]
    assert metric(samples, "jaif_tokens_total", model="m-embed", kind="completion") is None
    records = records_after(gateway.db, model="m-chat", count=8)
    assert sum(r.prompt_tokens for r in records) == told["m-chat"]["prompt"]
    assert sum(r.completion_tokens for r in records) == told["m-chat"]["completion"]

    # Latency of every request; time to first token of the streams only.
    for model, count in (("m-chat", 8), ("m-embed", 2), ("m-down", 1)):
        assert metric(samples, "jaif_request_latency_seconds_count", model=model) == count
        assert metric(samples, "jaif_request_latency_seconds_bucket", model=model, le="+Inf") == count
        assert metric(samples, "jaif_request_latency_seconds_sum", model=model) > 0
    assert metric(samples, "jaif_time_to_first_token_seconds_count", model="m-chat") == 3
    assert metric(samples, "jaif_time_to_first_token_seconds_bucket", model="m-chat", le="+Inf") == 3
    ttft_sum = metric(samples, "jaif_time_to_first_token_seconds_sum", model="m-chat")
    assert 0 < ttft_sum < metric(samples, "jaif_request_latency_seconds_sum", model="m-chat")
    assert metric(samples, "jaif_time_to_first_token_seconds_count", model="m-embed") is None

    # Replica health, as the background checks last saw it.
    def health(model: str, replica: str) -> float | None:
        return metric(scrape(gateway.base), "jaif_replica_healthy", model=model, replica=replica)

    for model, replica, expected in (
        ("m-chat", gateway.one, 1),
        ("m-chat", gateway.two, 1),
        ("m-embed", gateway.one, 1),
        ("m-down", gateway.down, 0),
    ):
        assert wait_for(lambda m=model, r=replica: health(m, r), lambda v, e=expected: v == e) == expected
    # The gauge is a snapshot taken at each health probe: one taken while the last stream was still
    # closing says 1, so wait for a probe after the traffic has settled.
    def outstanding() -> list:
        return [s for s in scrape(gateway.base) if s.name == "jaif_replica_outstanding_requests"]

    settled = wait_for(outstanding, lambda samples: {s.value for s in samples} == {0})
    assert len(settled) == 4 and {s.value for s in settled} == {0}


def test_healthz_lists_models_with_replica_counts(gateway):
    expected = {
        "m-chat": {"replicas": 2, "healthy": 2},
        "m-embed": {"replicas": 1, "healthy": 1},
        "m-down": {"replicas": 1, "healthy": 0},  # its health checks fail
    }
    # The only server of its database runs the deployments' controller, from its first tick on.
    state = wait_for(lambda: healthz(gateway.base),
                     lambda h: h["models"] == expected and h["deployments_controller"])
    assert state == {"status": "ok", "models": expected, "dependencies": {"database": "ok"},
                     "deployments_controller": True}
