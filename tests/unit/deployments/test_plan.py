"""plan.py: every replica state against every job state, and the count brought to the desired one."""

from __future__ import annotations

import pytest

from jaif.compute.models import JobState
from jaif.deployments.models import ReplicaState as R
from jaif.deployments.plan import Move, Observed, Policy, make_plan

POLICY = Policy(desired=1, max_replicas=3, start_timeout_s=600, health_failures=3, drain_s=10, drain_timeout_s=300)


def obs(i: str, state: R, job: JobState | None = JobState.running, **kw) -> Observed:
    return Observed(id=i, state=state, age_s=kw.pop("age_s", 1.0), job=job, created=kw.pop("created", 0.0), **kw)


def plan(replicas, **policy):
    p = make_plan(Policy(**(vars(POLICY) | policy)), replicas)
    return sorted(p.moves, key=lambda m: m.replica_id), p.submit


def test_nothing_to_do_when_the_replica_is_ready_and_healthy():
    assert plan([obs("a", R.ready, probe=True)]) == ([], 0)


@pytest.mark.parametrize("desired,submit", [(0, 0), (1, 1), (3, 3), (5, 3)])
def test_an_empty_deployment_submits_up_to_desired_never_past_max(desired, submit):
    assert plan([], desired=desired) == ([], submit)


def test_pending_stays_pending_while_queued_and_starts_when_its_job_runs():
    assert plan([obs("a", R.pending, JobState.pending, job_reason="Priority")]) == ([], 0)
    moves, submit = plan([obs("a", R.pending, JobState.running)])
    assert [(m.replica_id, m.state, m.cancel) for m in moves] == [("a", R.starting, False)] and submit == 0


def test_starting_becomes_ready_only_when_it_listens_and_passes_its_check():
    assert plan([obs("a", R.starting, listening=False, probe=None)]) == ([], 0)
    assert plan([obs("a", R.starting, listening=True, probe=False)]) == ([], 0)
    assert plan([obs("a", R.starting, listening=True, probe=True)]) == ([Move("a", R.ready, "")], 0)


def test_a_replica_not_ready_in_time_is_cancelled_failed_and_replaced():
    moves, submit = plan([obs("a", R.starting, listening=True, probe=False, age_s=601)])
    assert [(m.state, m.cancel) for m in moves] == [(R.failed, True)] and "not ready within 600 s" in moves[0].reason
    assert submit == 1


def test_failed_health_checks_cancel_and_replace_a_ready_replica():
    assert plan([obs("a", R.ready, probe=False, failures=2)]) == ([], 0)
    moves, submit = plan([obs("a", R.ready, probe=False, failures=3)])
    assert [(m.state, m.cancel) for m in moves] == [(R.failed, True)] and submit == 1
    assert moves[0].reason == "failed 3 health checks in a row"


@pytest.mark.parametrize("state", [R.pending, R.starting, R.ready])
@pytest.mark.parametrize("job", [JobState.failed, JobState.completed, JobState.timeout, JobState.cancelled, None])
def test_a_replica_whose_job_ended_on_its_own_failed_and_is_replaced(state, job):
    moves, submit = plan([obs("a", state, job, exit_code=1 if job else None, job_reason="boom")])
    assert [(m.state, m.cancel) for m in moves] == [(R.failed, False)] and submit == 1
    if job is None:
        assert moves[0].reason == "the scheduler no longer knows its job"
    else:
        assert moves[0].reason.startswith(f"its job ended: {job.value}, exit code 1 (boom)")


def test_a_draining_replica_whose_job_ended_has_ended():
    moves, submit = plan([obs("a", R.draining, JobState.cancelled), obs("b", R.ready, probe=True)])
    assert moves == [Move("a", R.ended, "drained")] and submit == 0


def test_draining_waits_for_its_requests_then_is_cancelled():
    b = obs("b", R.ready, probe=True)
    assert plan([obs("a", R.draining, age_s=5), b]) == ([], 0)  # not yet drain_s
    assert plan([obs("a", R.draining, age_s=20, outstanding=2), b]) == ([], 0)  # requests in flight
    assert plan([obs("a", R.draining, age_s=20), b]) == ([Move("a", R.ended, "drained", cancel=True)], 0)
    moves, _ = plan([obs("a", R.draining, age_s=301, outstanding=2), b])
    assert [(m.state, m.cancel) for m in moves] == [(R.ended, True)] and "2 requests still in flight" in moves[0].reason


def test_draining_replicas_do_not_count_against_the_desired_count():
    assert plan([obs("a", R.draining, age_s=1)]) == ([], 1)


def test_surplus_replicas_go_least_advanced_first_ready_ones_drain():
    replicas = [obs("r1", R.ready, probe=True, created=1), obs("r2", R.ready, probe=True, created=2),
                obs("s", R.starting, created=3), obs("p", R.pending, JobState.pending, created=4)]
    moves, submit = plan(replicas, desired=1)
    assert submit == 0
    assert [(m.replica_id, m.state, m.cancel) for m in moves] == [
        ("p", R.ended, True), ("r2", R.draining, False), ("s", R.ended, True)]


def test_deleting_drains_every_ready_replica_and_cancels_the_rest():
    moves, submit = plan([obs("r", R.ready, probe=True), obs("p", R.pending, JobState.pending)], desired=0,
                         surplus_reason="deleted")
    assert [(m.replica_id, m.state, m.cancel, m.reason) for m in moves] == [
        ("p", R.ended, True, "deleted"), ("r", R.draining, False, "deleted")] and submit == 0


def test_max_replicas_caps_the_count_even_when_desired_is_higher():
    moves, submit = plan([obs(str(i), R.ready, probe=True, created=i) for i in range(4)], desired=5, max_replicas=3)
    assert [(m.replica_id, m.state) for m in moves] == [("3", R.draining)] and submit == 0


def test_a_crash_and_a_new_replica_in_one_tick():
    moves, submit = plan([obs("a", R.ready, JobState.failed), obs("b", R.ready, probe=True)], desired=2)
    assert [m.state for m in moves] == [R.failed] and submit == 1


def test_a_replica_that_just_became_ready_but_is_surplus_is_cancelled_not_drained():
    moves, submit = plan([obs("a", R.ready, probe=True, created=1),
                          obs("b", R.starting, listening=True, probe=True, created=2)], desired=1)
    assert [(m.replica_id, m.state, m.cancel) for m in moves] == [("b", R.ended, True)] and submit == 0


@pytest.mark.parametrize("crashes,since,submit", [(0, 0, 1), (1, 4.9, 0), (1, 5.1, 1), (2, 9, 0), (2, 10.1, 1),
                                                  (10, 299, 0), (10, 301, 1)])
def test_after_replicas_that_never_became_ready_new_ones_wait_a_doubling_backoff(crashes, since, submit):
    p = make_plan(Policy(**(vars(POLICY) | {"restart_backoff_s": 5, "restart_backoff_max_s": 300,
                                            "crashes": crashes, "since_crash_s": since})), [])
    assert p.submit == submit
    assert bool(p.waiting) == (submit == 0) and (not p.waiting or "failed before they were ready" in p.waiting)


def test_a_replica_failing_now_before_ever_being_ready_starts_the_backoff():
    policy = {"restart_backoff_s": 5, "restart_backoff_max_s": 300}
    assert plan([obs("a", R.starting, JobState.failed)], **policy)[1] == 0
    assert plan([obs("a", R.ready, JobState.failed, was_ready=True)], **policy)[1] == 1  # it served: at once
    assert plan([obs("a", R.starting, JobState.failed)], **policy | {"restart_backoff_s": 0})[1] == 1


HANDOVER = {"handover_s": 600, "end_margin_s": 60}


def test_a_replica_near_its_time_limit_gets_a_successor_and_keeps_serving_meanwhile():
    assert plan([obs("a", R.ready, probe=True, remaining_s=601)], **HANDOVER) == ([], 0)
    assert plan([obs("a", R.ready, probe=True, remaining_s=599)], **HANDOVER) == ([], 1)
    # the successor queues and starts: the old one serves on, and no third is submitted
    assert plan([obs("a", R.ready, probe=True, remaining_s=500),
                 obs("b", R.starting, created=1)], **HANDOVER) == ([], 0)
    # even at max_replicas (the retiring one is out of the count)
    assert plan([obs("a", R.ready, probe=True, remaining_s=500)], **HANDOVER | {"max_replicas": 1}) == ([], 1)


def test_the_retiring_replica_drains_once_its_successor_is_ready():
    moves, submit = plan([obs("a", R.ready, probe=True, remaining_s=400),
                          obs("b", R.starting, listening=True, probe=True, created=1)], **HANDOVER)
    assert sorted((m.replica_id, m.state) for m in moves) == [("a", R.draining), ("b", R.ready)] and submit == 0
    assert [m.reason for m in moves if m.replica_id == "a"] == ["walltime handover: its successor is ready"]


def test_without_a_ready_successor_it_drains_at_the_end_margin():
    moves, _ = plan([obs("a", R.ready, probe=True, remaining_s=59), obs("b", R.pending, JobState.pending,
                                                                          created=1)], **HANDOVER)
    assert [(m.replica_id, m.state, m.reason) for m in moves] == [
        ("a", R.draining, "its time limit is near (no successor ready)")]


def test_of_two_retiring_replicas_one_drains_per_ready_successor_the_oldest_first():
    moves, submit = plan([obs("a", R.ready, probe=True, remaining_s=300), obs("b", R.ready, probe=True,
                                                                              remaining_s=200),
                          obs("c", R.ready, probe=True, created=2)], desired=2, **HANDOVER)
    assert [(m.replica_id, m.state) for m in moves] == [("b", R.draining)] and submit == 1
