"""ReplicaSet: least outstanding requests over healthy replicas, rotation among equals, prefix affinity,
cool-downs, and which failures take a replica out of rotation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import pytest

from jaif.inference import routing
from jaif.inference.backends.base import Body
from jaif.inference.routing import REPEATED_ERRORS, Affinity, ReplicaSet, ReplicaState, prefix_key


class FakeBackend:
    """An InferenceBackend that is never called: routing only needs its URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def chat(self, body: Body, *, request_id: str | None = None) -> Body:
        raise NotImplementedError

    def chat_stream(self, body: Body, *, request_id: str | None = None):
        raise NotImplementedError

    async def complete(self, body: Body, *, request_id: str | None = None) -> Body:
        raise NotImplementedError

    def complete_stream(self, body: Body, *, request_id: str | None = None):
        raise NotImplementedError

    async def embed(self, body: Body, *, request_id: str | None = None) -> Body:
        raise NotImplementedError

    async def health(self) -> bool:
        return True

    def count_prompt_tokens(self, endpoint: str, body: Body) -> int | None:
        return None

    async def aclose(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(routing, "time", SimpleNamespace(monotonic=clock))
    return clock


def replica_set(n: int, *, cooldown_s: float = 10.0, affinity: Affinity | None = None) -> ReplicaSet:
    replicas = [ReplicaState(FakeBackend(f"http://r{i}/v1")) for i in range(n)]
    return ReplicaSet(replicas, cooldown_s=cooldown_s, affinity=affinity)


def urls(replicas) -> list[str]:
    return [r.url for r in replicas]


def test_picks_the_replica_with_least_outstanding_requests(clock):
    rs = replica_set(3)
    for replica, outstanding in zip(rs.replicas, (3, 1, 2), strict=True):
        replica.outstanding = outstanding
    assert rs.pick().url == "http://r1/v1"
    rs.replicas[1].outstanding = 5
    assert rs.pick().url == "http://r2/v1"
    rs.replicas[0].outstanding = 0
    assert rs.pick().url == "http://r0/v1"


def test_rotates_among_equally_loaded_replicas(clock):
    rs = replica_set(3)
    picks = [rs.pick().url for _ in range(9)]
    assert Counter(picks) == {"http://r0/v1": 3, "http://r1/v1": 3, "http://r2/v1": 3}
    # Sequential requests (nothing outstanding) never go to the same replica twice in a row.
    assert all(a != b for a, b in zip(picks, picks[1:], strict=False))


def test_rotation_only_among_the_least_loaded(clock):
    rs = replica_set(3)
    rs.replicas[1].outstanding = 1
    picks = {rs.pick().url for _ in range(10)}
    assert picks == {"http://r0/v1", "http://r2/v1"}


def test_outstanding_counts_steer_concurrent_requests_apart(clock):
    """What the gateway does: count a request on its replica while it runs."""
    rs = replica_set(2)
    first = rs.pick()
    first.outstanding += 1
    second = rs.pick()
    assert second is not first
    second.outstanding += 1
    first.outstanding -= 1
    assert rs.pick() is first


def test_exclude_skips_replicas_already_tried(clock):
    rs = replica_set(3)
    tried = [rs.replicas[0], rs.replicas[2]]
    assert {rs.pick(exclude=tried).url for _ in range(5)} == {"http://r1/v1"}
    # Excluded even when it is the least loaded.
    rs.replicas[1].outstanding = 7
    assert rs.pick(exclude=[rs.replicas[0]]).url == "http://r2/v1"
    assert rs.pick(exclude=rs.replicas) is None


def test_a_failed_replica_sits_out_its_cooldown_then_returns(clock):
    rs = replica_set(2, cooldown_s=10)
    bad, good = rs.replicas
    rs.mark_failed(bad, "connection refused")
    assert bad.failures == 1 and bad.last_error == "connection refused"
    assert not bad.healthy(clock.now)
    assert {rs.pick().url for _ in range(6)} == {good.url}
    # Even the least loaded replica is skipped while it cools down.
    good.outstanding = 50
    assert rs.pick() is good

    clock.now += 9.9
    assert rs.pick() is good
    clock.now += 0.1
    assert bad.healthy(clock.now)
    assert rs.pick() is bad


def test_a_new_failure_restarts_the_cooldown(clock):
    rs = replica_set(1, cooldown_s=10)
    (replica,) = rs.replicas
    rs.mark_failed(replica, "503")
    clock.now += 8
    rs.mark_failed(replica, "503 again")
    clock.now += 8
    assert rs.pick() is None
    assert replica.failures == 2 and replica.last_error == "503 again"
    clock.now += 2
    assert rs.pick() is replica


def test_mark_ok_ends_a_cooldown(clock):
    rs = replica_set(1)
    (replica,) = rs.replicas
    rs.mark_failed(replica, "boom")
    assert rs.pick() is None
    rs.mark_ok(replica)
    assert rs.pick() is replica
    assert replica.failures == 0 and replica.last_error is None


def test_a_failed_health_check_takes_a_replica_out_and_keeps_it_out(clock):
    rs = replica_set(2, cooldown_s=1)
    down, up = rs.replicas
    rs.probed(down, ok=False)
    assert not down.healthy(clock.now) and down.last_error == "health check failed"
    # A replica that stays down fails every check and never comes back between them.
    for _ in range(10):
        clock.now += 0.5
        rs.probed(down, ok=False)
        rs.probed(up, ok=True)
        assert rs.pick() is up
    clock.now += 1
    assert rs.pick() is down


def test_each_change_of_health_is_reported_once_even_after_a_failed_request(clock):
    """The log's "failed its health check" line comes from the first failed check, also when a failed
    request had put the replica in cool-down before any check ran (a flaky e2e test waited for it)."""
    rs = replica_set(1, cooldown_s=0.5)
    (replica,) = rs.replicas
    rs.mark_failed(replica, "connection refused")
    assert rs.probed(replica, ok=False) is False
    for _ in range(5):
        clock.now += 0.2
        assert rs.probed(replica, ok=False) is None
    assert rs.probed(replica, ok=True) is True
    assert rs.probed(replica, ok=True) is None


def test_a_passing_health_check_does_not_cut_a_cooldown_short(clock):
    """A replica that answers health checks but failed requests (a 5xx) sits out its cool-down."""
    rs = replica_set(1, cooldown_s=10)
    (replica,) = rs.replicas
    rs.mark_failed(replica, "answered 500")
    clock.now += 5
    rs.probed(replica, ok=True)
    assert rs.pick() is None
    clock.now += 5
    rs.probed(replica, ok=True)
    assert rs.pick() is replica


def test_retry_after_is_the_wait_for_the_first_replica_back(clock):
    rs = replica_set(3, cooldown_s=10)
    a, b, c = rs.replicas
    assert rs.retry_after() == 1.0  # healthy replicas: the floor
    rs.mark_failed(a, "x")
    clock.now += 4
    rs.mark_failed(b, "x")
    assert rs.retry_after() == 1.0  # c is still healthy
    rs.mark_failed(c, "x")
    assert rs.pick() is None
    assert rs.retry_after() == pytest.approx(6.0)  # a is back at +10
    clock.now += 5.5
    assert rs.retry_after() == 1.0  # never less than a second


def test_retry_after_without_replicas(clock):
    assert replica_set(0).retry_after() == 1.0
    assert replica_set(0).pick() is None


# -- prefix affinity -------------------------------------------------------------------------------------
SYSTEM = {"role": "system", "content": "You are a careful assistant. " * 10}


def chat(first_user: str, *later: str) -> dict:
    """A conversation: the system prompt, the first user message, then alternating answers and questions."""
    messages = [SYSTEM, {"role": "user", "content": first_user}]
    for i, text in enumerate(later):
        messages.append({"role": "assistant" if i % 2 == 0 else "user", "content": text})
    return {"model": "m", "messages": messages}


def test_a_conversation_keeps_its_key_as_it_grows_and_others_differ():
    turn1 = chat("Summarise the report on Jülich's cooling.")
    turn3 = chat("Summarise the report on Jülich's cooling.", "It says...", "And the costs?", "They...", "Thanks")
    other = chat("Translate this poem.")
    key = prefix_key(turn1, 2048)
    assert key is not None and prefix_key(turn3, 2048) == key
    assert prefix_key(other, 2048) != key
    # Content parts count by their text; past the limit only the start counts.
    text = turn1["messages"][1]["content"]
    parts = {"messages": [SYSTEM, {"role": "user", "content": [{"type": "text", "text": text}]}]}
    assert prefix_key(parts, 2048) == key
    assert prefix_key(turn1, 16) == prefix_key(other, 16)  # both begin with the same system prompt


def test_completion_prompts_are_keyed_by_their_start_and_embeddings_not_at_all():
    doc = "Once upon a time " * 200
    assert prefix_key({"prompt": doc}, 1024) == prefix_key({"prompt": doc + "and then"}, 1024)
    assert prefix_key({"prompt": [doc, "x"]}, 1024) == prefix_key({"prompt": doc}, 1024)
    assert prefix_key({"prompt": [1, 2, 3]}, 1024) == prefix_key({"prompt": [1, 2, 3]}, 1024) is not None
    assert prefix_key({"prompt": "a"}, 1024) != prefix_key({"prompt": "b"}, 1024)
    assert prefix_key({"input": "embed me"}, 1024) is None
    assert prefix_key({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 1024) is None


def test_keys_and_replica_choice_are_the_same_in_every_process():
    """Gateway workers are separate processes, each with its own string-hash seed: a conversation must
    reach the same replica whichever worker its turns come through."""
    code = (
        "import json\nfrom jaif.inference.routing import Affinity, ReplicaSet, ReplicaState, prefix_key\n"
        "class B:\n    def __init__(self, url): self.url = url\n"
        "rs = ReplicaSet([ReplicaState(B(f'http://r{i}/v1')) for i in range(5)], affinity=Affinity())\n"
        "print(json.dumps([rs.pick(key=prefix_key({'prompt': f'text {i}'}, 64)).url for i in range(20)]))"
    )
    picks = {
        subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True,
            text=True, check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }  # fmt: skip
    assert len(picks) == 1 and len(set(json.loads(picks.pop()))) > 1


def test_the_key_is_computed_only_with_two_replicas_and_affinity_on():
    body = chat("hello")
    assert replica_set(1, affinity=Affinity()).affinity_key(body) is None
    assert replica_set(3).affinity_key(body) is None  # affinity off
    assert replica_set(3, affinity=Affinity()).affinity_key(body) == prefix_key(body, 2048)


def test_the_same_key_goes_to_the_same_replica(clock):
    rs = replica_set(4, affinity=Affinity(slack=0))
    for key in range(50):
        picks = {rs.pick(key=key).url for _ in range(6)}
        assert len(picks) == 1, (key, picks)  # no rotation for a key


def test_different_keys_spread_over_the_replicas(clock):
    rs = replica_set(4, affinity=Affinity())
    counts = Counter(rs.pick(key=prefix_key(chat(f"conversation {i}"), 2048)).url for i in range(400))
    assert set(counts) == set(urls(rs.replicas))
    assert all(60 <= n <= 140 for n in counts.values()), counts  # 100 each expected


def test_a_busy_replica_spills_over_to_the_least_loaded(clock):
    rs = replica_set(3, affinity=Affinity(slack=2))
    home = rs.pick(key=7)
    others = [r for r in rs.replicas if r is not home]
    home.outstanding = 2  # least is 0: within the slack
    assert rs.pick(key=7) is home
    home.outstanding = 3  # past it
    spilled = {rs.pick(key=7).url for _ in range(4)}
    assert spilled == set(urls(others))  # least-outstanding, rotating
    for other in others:
        other.outstanding = 1  # the least is 1 now: within the slack again
    assert rs.pick(key=7) is home


def test_without_affinity_turns_of_a_conversation_rotate(clock):
    """What affinity is for: sequential requests rotate over idle replicas, a conversation's turns too."""
    rs = replica_set(2)
    key = prefix_key(chat("hello"), 2048)
    assert len({rs.pick(key=key).url for _ in range(4)}) == 2


def test_failover_and_cooldown_move_a_key_to_the_same_next_replica(clock):
    """Rendezvous hashing: without its replica, a key goes to its second choice, the same every time,
    and keys of other replicas stay where they were."""
    rs = replica_set(4, affinity=Affinity(slack=0))
    homes = {key: rs.pick(key=key) for key in range(200)}
    lost = rs.replicas[0]
    second = {key: rs.pick(exclude=[lost], key=key) for key in homes}
    assert lost not in second.values()
    assert all(second[k] is homes[k] for k in homes if homes[k] is not lost)
    assert all(rs.pick(exclude=[lost], key=k) is second[k] for k in homes)
    rs.mark_failed(lost, "refused")  # a cool-down moves them the same way
    assert all(rs.pick(key=k) is second[k] for k in homes)
    assert rs.pick(exclude=rs.replicas, key=1) is None


# -- which failures take a replica out -------------------------------------------------------------------
def test_an_error_answer_leaves_the_replica_in_until_repeated(clock):
    rs = replica_set(2)
    flaky, _ = rs.replicas
    for _ in range(REPEATED_ERRORS - 1):
        assert rs.failed(flaky, "answered 500", answered=True) is False
        assert flaky.healthy(clock.now) and flaky.last_error == "answered 500"
    assert rs.failed(flaky, "answered 500", answered=True) is True
    assert not flaky.healthy(clock.now)


def test_errors_in_a_row_start_again_after_a_good_answer(clock):
    rs = replica_set(2)
    flaky, _ = rs.replicas
    rs.failed(flaky, "answered 500", answered=True)
    flaky.errors = 0  # what the gateway does on a good answer
    for _ in range(REPEATED_ERRORS - 1):
        assert rs.failed(flaky, "answered 500", answered=True) is False
    assert flaky.healthy(clock.now)


def test_a_connection_failure_takes_a_replica_out_at_once(clock):
    rs = replica_set(2)
    down, up = rs.replicas
    assert rs.failed(down, "connection refused", answered=False) is True
    assert {rs.pick().url for _ in range(4)} == {up.url}


def test_the_last_healthy_replica_stays_in_until_a_health_check_fails(clock):
    rs = replica_set(2)
    a, b = rs.replicas
    assert rs.failed(a, "connection refused", answered=False) is True
    for _ in range(REPEATED_ERRORS + 2):  # b is the last one: neither kind of failure takes it out
        assert rs.failed(b, "connection refused", answered=False) is False
        assert rs.failed(b, "answered 500", answered=True) is False
    assert rs.pick() is b
    rs.probed(b, ok=False)  # the health check confirms it
    assert rs.pick() is None
    clock.now += 10  # back after its cool-down; its last check failed, so a failed request takes it out now
    rs.mark_ok(a)
    a.cooldown_until = clock.now + 100
    assert rs.failed(b, "connection refused", answered=False) is True


def test_a_hung_last_replica_is_taken_out_when_its_own_check_failed(clock):
    """A late first byte starts a health check; the request that saw it fail may take out the last one."""
    rs = replica_set(1)
    (only,) = rs.replicas
    assert rs.failed(only, "no answer within 30 s and the health check failed", answered=False, unhealthy=True)
    assert rs.pick() is None


def test_a_single_replica_is_never_taken_out_by_requests(clock):
    rs = replica_set(1)
    (only,) = rs.replicas
    for _ in range(10):
        assert rs.failed(only, "answered 500", answered=True) is False
        assert rs.failed(only, "stream broke", answered=False) is False
    assert rs.pick() is only
