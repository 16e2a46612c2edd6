"""Prefix-affinity routing behind a real `jaif serve` (issue 12): the turns of a conversation go to one
replica, where the engine has the conversation so far cached, and different conversations spread over
the replicas. Without affinity the gateway sends sequential requests to its idle replicas in turn, so the
turns of a conversation would alternate between the two stand-ins here."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import openai
import pytest

from tests.support.databases import one_database
from tests.support.gateway import FAST_ROUTING, add_model, create_key, records_after, wait_served
from tests.support.procs import server, upstream

pytestmark = one_database()
SYSTEM = {"role": "system", "content": "You are the help desk of an AI factory. Answer briefly. " * 8}
CONVERSATIONS, TURNS = 12, 4


@pytest.fixture(scope="module")
def gateway(module_env):
    # The registry refreshed fast (the replicas added here are served at once), and health probes at their
    # default pace: on a loaded machine a probe every 0.2 s that times out takes a replica out for a moment,
    # and a conversation's next turn then goes to the other one, which is failover, not what this tests.
    env = {**module_env, "JAIF_INFERENCE__REGISTRY_REFRESH_S": FAST_ROUTING["JAIF_INFERENCE__REGISTRY_REFRESH_S"]}
    db = env["JAIF_DATABASE_URL"]
    key = create_key(db, project="affinity", token_quota=100_000_000)
    with server(env) as base:
        yield SimpleNamespace(base=base, key=key, env=env, db=db)


def converse(client: openai.OpenAI, model: str, first: str, *, stream: bool = False) -> None:
    """TURNS turns of one conversation: each request is the one before, its answer and a new question."""
    messages = [SYSTEM, {"role": "user", "content": first}]
    for turn in range(TURNS):
        if stream:
            chunks = client.chat.completions.create(model=model, messages=messages, max_tokens=3, stream=True)
            answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            reply = client.chat.completions.create(model=model, messages=messages, max_tokens=3)
            answer = reply.choices[0].message.content
        assert answer == "tok0 tok1 tok2"
        messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": f"And then {turn}?"}]


def test_a_conversation_stays_on_one_replica_and_conversations_spread(gateway):
    env, base = gateway.env, gateway.base
    with upstream(env) as (a, _), upstream(env) as (b, _):
        add_model(gateway.db, "aff-chat", [a, b])
        wait_served(base, "aff-chat", replicas=2)
        with openai.OpenAI(base_url=base + "/v1", api_key=gateway.key, max_retries=0, timeout=15) as client:
            for i in range(CONVERSATIONS):
                converse(client, "aff-chat", f"Question {i}: how do I get an allocation?", stream=i % 2 == 1)

        records = records_after(gateway.db, model="aff-chat", count=CONVERSATIONS * TURNS)
        assert {r.status for r in records} == {"ok"}
        homes = []
        for i in range(CONVERSATIONS):
            turns = records[i * TURNS : (i + 1) * TURNS]
            assert len({r.replica for r in turns}) == 1, f"conversation {i}: {[r.replica for r in turns]}"
            homes.append(turns[0].replica)
        spread = Counter(homes)
        assert set(spread) == {a, b}, spread  # 12 conversations all on one of two replicas: p = 1/2048
