"""ReplicaSet: least outstanding requests over healthy replicas, rotation among equals, cool-downs."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from jaif.inference import routing
from jaif.inference.backends.base import Body
from jaif.inference.routing import ReplicaSet, ReplicaState


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


def replica_set(n: int, *, cooldown_s: float = 10.0) -> ReplicaSet:
    return ReplicaSet([ReplicaState(FakeBackend(f"http://r{i}/v1")) for i in range(n)], cooldown_s=cooldown_s)


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
