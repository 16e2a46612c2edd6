"""An operator changes the registry of a running `jaif serve` with the CLI while clients keep calling:
an alias re-pointed, a replica added, a replica removed. No client request fails."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
    remove_replica,
    scrape,
    usage_records,
    wait_served,
)
from tests.support.procs import jaif, server, upstream, wait_for

pytestmark = one_database()
MESSAGES = [{"role": "user", "content": "keep going"}]


@pytest.fixture(scope="module")
def gateway(module_env):
    env = {**module_env, **FAST_ROUTING}
    db = env["JAIF_DATABASE_URL"]
    key = create_key(db, project="live")
    with server(env) as base:
        yield SimpleNamespace(base=base, key=key, env=env, db=db)


class Calls:
    """What the clients saw: the model named in each reply, in order, and any exception."""

    def __init__(self) -> None:
        self.models: list[str] = []
        self.errors: list[Exception] = []
        self.stop = threading.Event()

    def count(self) -> int:
        return len(self.models)


@contextmanager
def calling(gateway, model: str, *, clients: int) -> Iterator[Calls]:
    """``clients`` threads call ``model`` back to back until the block ends."""
    calls = Calls()

    def run() -> None:
        with openai.OpenAI(base_url=gateway.base + "/v1", api_key=gateway.key, max_retries=0, timeout=15) as client:
            while not calls.stop.is_set():
                try:
                    reply = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=2)
                    calls.models.append(reply.model)
                except Exception as exc:  # collected, and the test fails on it
                    calls.errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        yield calls
    finally:
        calls.stop.set()
        for t in threads:
            t.join(20)
    assert not calls.errors, f"{len(calls.errors)} failed requests, first: {calls.errors[0]!r}"


def test_repointing_an_alias_moves_clients_without_a_failed_request(gateway):
    env, base, db = gateway.env, gateway.base, gateway.db
    with upstream(env, "--delay-ms", "5") as (first, _), upstream(env, "--delay-ms", "5") as (other, _):
        add_model(db, "first-model", [first], aliases=["default-chat"])
        add_model(db, "other-model", [other])
        wait_served(base, "first-model", replicas=1)
        wait_served(base, "other-model", replicas=1)

        with calling(gateway, "default-chat", clients=3) as calls:
            wait_for(calls.count, lambda n: n >= 20)
            jaif(env, "model", "alias", "default-chat", "other-model")
            switched = wait_for(
                lambda: calls.models[-10:], lambda last: len(last) == 10 and set(last) == {"other-model"}, timeout=15
            )
            assert set(switched) == {"other-model"}

    seen = calls.models
    assert seen[0] == "first-model" and seen[-1] == "other-model"
    # Once the server re-read the registry, new requests go to the new model; only requests already
    # under way (one per client at most) finish on the old one.
    after = seen[seen.index("other-model") :]
    assert after.count("first-model") < 3
    with openai.OpenAI(base_url=base + "/v1", api_key=gateway.key, max_retries=0) as client:
        assert "default-chat" in {m.id for m in client.models.list()}
    # Each request is metered once, under the model that served it.
    metered = wait_for(
        lambda: [len(usage_records(db, model=m)) for m in ("first-model", "other-model")],
        lambda counts: sum(counts) >= len(seen),
    )
    assert metered == [seen.count("first-model"), seen.count("other-model")]


def test_replicas_added_and_removed_take_effect_in_the_running_server(gateway):
    env, base, db = gateway.env, gateway.base, gateway.db
    with upstream(env, "--delay-ms", "20") as (old, _), upstream(env, "--delay-ms", "20") as (new, _):
        add_model(db, "grow-chat", [old])
        wait_served(base, "grow-chat", replicas=1)

        with calling(gateway, "grow-chat", clients=4) as calls:
            wait_for(calls.count, lambda n: n >= 10)
            jaif(env, "model", "add-replica", "grow-chat", new)
            wait_served(base, "grow-chat", replicas=2)
            on_new = wait_for(
                lambda: [r for r in usage_records(db, model="grow-chat") if r.replica == new], lambda r: len(r) >= 5
            )
            assert len(on_new) >= 5

            # Removed while requests to it are under way: those finish, new ones go to the other.
            jaif(env, "model", "remove-replica", "grow-chat", old)
            wait_served(base, "grow-chat", replicas=1)
            gauge = wait_for(
                lambda: metric(scrape(base), "jaif_replica_healthy", model="grow-chat", replica=old),
                lambda v: v is None,
            )
            assert gauge is None  # it left /metrics too
            removed_at = calls.count()
            wait_for(calls.count, lambda n: n >= removed_at + 20)

    records = records_after(db, model="grow-chat", count=len(calls.models))
    assert {r.status for r in records} == {"ok"}
    assert {r.replica for r in records[-12:]} == {new}


def test_a_stream_on_a_removed_replica_runs_to_its_end(gateway):
    env, base, db = gateway.env, gateway.base, gateway.db
    with upstream(env, "--chunk-delay-ms", "100", "--tokens", "10") as (slow, _):
        add_model(db, "drain-chat", [slow])
        wait_served(base, "drain-chat", replicas=1)
        with openai.OpenAI(base_url=base + "/v1", api_key=gateway.key, max_retries=0, timeout=10) as client:
            stream = client.chat.completions.create(model="drain-chat", messages=MESSAGES, max_tokens=10, stream=True)
            texts = [next(stream).choices[0].delta.content]
            remove_replica(db, "drain-chat", slow)  # its last replica: the model leaves the registry
            wait_for(lambda: healthz(base)["models"], lambda models: "drain-chat" not in models)
            texts += [chunk.choices[0].delta.content for chunk in stream]
    assert "".join(texts) == " ".join(f"tok{i}" for i in range(10))
    (record,) = records_after(db, model="drain-chat", count=1)
    assert record.status == "ok"
