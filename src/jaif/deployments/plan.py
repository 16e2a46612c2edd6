"""The replica plan: from a deployment's desired count and what its replicas are doing to the moves
that bring one to the other. Pure: nothing here talks to a scheduler, a replica or the database.

Per replica (in this order of precedence):

- its job has ended (or the scheduler no longer knows it): a draining replica has *ended*, any other
  has *failed* (crashed, timed out, killed): it leaves the routing and is replaced;
- pending, and its job runs: *starting*; still queued: stays pending with the scheduler's reason;
- starting: *ready* once it has said where it listens and its readiness check passes; cancelled and
  *failed* when it is not ready within the start timeout;
- ready: cancelled and *failed* after ``health_failures`` consecutive failed health checks;
- draining: cancelled (*ended*) once it has drained ``drain_s`` and has no request in flight, or
  after ``drain_timeout_s`` whatever it still has.

Then the count: the live replicas (pending, starting, ready) are brought to ``desired`` (at most
``max_replicas``): new ones submitted, or surplus ones removed, the least advanced first (pending, then
starting, newest first; ready replicas drain rather than being cancelled). After replicas that failed
before they were ever ready (a crash loop: wrong weights, a broken engine), new ones wait a doubling
backoff instead of being submitted at once.

Walltime handover: a ready replica within ``handover_s`` of its job's time limit is *retiring*: it
keeps serving but no longer counts, so a successor is submitted; it drains as soon as a successor is
ready, or at ``end_margin_s`` before its end at the latest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from jaif.compute.models import JobState
from jaif.deployments.models import ReplicaState


@dataclass(frozen=True)
class Policy:
    desired: int  # already clamped to [min, max] (0 when the deployment is being deleted)
    max_replicas: int
    start_timeout_s: float
    health_failures: int
    drain_s: float
    drain_timeout_s: float
    restart_backoff_s: float = 0.0
    restart_backoff_max_s: float = 0.0
    handover_s: float = 0.0  # a ready replica this close to its time limit gets a successor (0: none)
    end_margin_s: float = 0.0  # and drains at the latest this close to it, successor ready or not
    crashes: int = 0  # replicas in a row (the newest ones) that failed before they were ever ready
    since_crash_s: float = 0.0  # since the newest of them ended
    surplus_reason: str = "scaled down"  # why surplus replicas go (scaled down, scaled to zero, deleted)

    @property
    def backoff_s(self) -> float:
        """How long to wait after the last crash before submitting again (doubling, capped)."""
        if self.crashes == 0:
            return 0.0
        return min(self.restart_backoff_max_s, self.restart_backoff_s * 2 ** (self.crashes - 1))


@dataclass(frozen=True)
class Observed:
    """One live replica as the controller sees it now."""

    id: str
    state: ReplicaState
    age_s: float  # in its present state
    job: JobState | None  # the scheduler's state of its job; None: the scheduler does not know it
    job_reason: str = ""
    exit_code: int | None = None
    listening: bool = False  # it has said where it listens
    probe: bool | None = None  # the readiness/health check now: passed, failed, not made
    failures: int = 0  # consecutive failed health checks, this one included
    outstanding: int = 0  # requests in flight on it
    was_ready: bool = False  # it has been ready (served) at some time
    remaining_s: float | None = None  # until its job's time limit (None: not running, or unknown)
    created: float = 0.0  # for ordering: larger is newer


@dataclass(frozen=True)
class Move:
    replica_id: str
    state: ReplicaState
    reason: str
    cancel: bool = False  # cancel its job


@dataclass
class Plan:
    moves: list[Move]
    submit: int  # new replicas to submit
    waiting: str = ""  # why replicas that are wanted are not submitted now

    def state_of(self, replica: Observed) -> ReplicaState:
        for move in self.moves:
            if move.replica_id == replica.id:
                return move.state
        return replica.state


def _ended(r: Observed) -> Move:
    if r.state == ReplicaState.draining:
        return Move(r.id, ReplicaState.ended, "drained")
    if r.job is None:
        return Move(r.id, ReplicaState.failed, "the scheduler no longer knows its job")
    why = f"its job ended: {r.job.value}"
    if r.exit_code is not None:
        why += f", exit code {r.exit_code}"
    if r.job_reason and r.job_reason != r.job.value:
        why += f" ({r.job_reason})"
    return Move(r.id, ReplicaState.failed, why)


def _step(r: Observed, policy: Policy) -> Move | None:
    """The move of one replica on its own (None: it stays as it is)."""
    if r.job is None or r.job.finished:
        return _ended(r)
    if r.state == ReplicaState.pending:
        if r.job == JobState.running:
            return Move(r.id, ReplicaState.starting, "started; waiting for it to listen and pass its readiness check")
        return None
    if r.state == ReplicaState.starting:
        if r.listening and r.probe:
            return Move(r.id, ReplicaState.ready, "")
        if r.age_s >= policy.start_timeout_s:
            return Move(r.id, ReplicaState.failed, f"not ready within {policy.start_timeout_s:g} s", cancel=True)
        return None
    if r.state == ReplicaState.ready:
        if r.failures >= policy.health_failures:
            return Move(r.id, ReplicaState.failed, f"failed {r.failures} health checks in a row", cancel=True)
        return None
    if r.state == ReplicaState.draining:
        drained = r.age_s >= policy.drain_s and r.outstanding == 0
        if drained or r.age_s >= policy.drain_timeout_s:
            why = "drained" if drained else f"drain timeout ({r.outstanding} requests still in flight)"
            return Move(r.id, ReplicaState.ended, why, cancel=True)
    return None


def _backoff(policy: Policy, replicas: list[Observed], moves: list[Move]) -> float:
    """Seconds still to wait before submitting, counting the replicas that fail in this very plan."""
    was_ready = {r.id for r in replicas if r.was_ready}
    failing = [m for m in moves if m.state == ReplicaState.failed]
    if any(m.replica_id in was_ready for m in failing):
        return 0.0  # it served before it failed: not a crash loop, replaced at once
    if failing:
        policy = replace(policy, crashes=policy.crashes + len(failing), since_crash_s=0.0)
    return policy.backoff_s - policy.since_crash_s


SURPLUS_ORDER = {ReplicaState.pending: 0, ReplicaState.starting: 1, ReplicaState.ready: 2}


def _retiring(policy: Policy, r: Observed) -> bool:
    return policy.handover_s > 0 and r.remaining_s is not None and r.remaining_s <= policy.handover_s


def _handover(policy: Policy, plan: Plan, retiring: list[Observed], live: list[Observed], target: int) -> None:
    """Drain retiring replicas as their successors are ready (the oldest first), and any that reached
    the end margin whatever the successors do."""
    ready = sum(1 for r in live if plan.state_of(r) == ReplicaState.ready)
    spare = max(0, ready + len(retiring) - target)
    for r in sorted(retiring, key=lambda r: r.remaining_s or 0.0):
        if spare > 0:
            spare -= 1
            plan.moves.append(Move(r.id, ReplicaState.draining, "walltime handover: its successor is ready"))
        elif (r.remaining_s or 0.0) <= policy.end_margin_s:
            plan.moves.append(Move(r.id, ReplicaState.draining, "its time limit is near (no successor ready)"))


def make_plan(policy: Policy, replicas: list[Observed]) -> Plan:
    moves = [m for m in (_step(r, policy) for r in replicas) if m is not None]
    plan = Plan(moves=moves, submit=0)
    target = max(0, min(policy.desired, policy.max_replicas))
    # Walltime handover: a ready replica near its time limit no longer counts, so a successor is
    # submitted (max_replicas may be passed by the retiring ones meanwhile); it drains once one is ready.
    retiring = [r for r in replicas if plan.state_of(r) == ReplicaState.ready and _retiring(policy, r)]
    live = [r for r in replicas if plan.state_of(r) in SURPLUS_ORDER and r not in retiring]
    _handover(policy, plan, retiring, live, target)
    if len(live) < target:
        wait = _backoff(policy, replicas, moves)
        if wait > 0:
            plan.waiting = (f"{policy.crashes} replica(s) in a row failed before they were ready; "
                            f"the next is submitted in {wait:.0f} s")
        else:
            plan.submit = target - len(live)
        return plan
    surplus = sorted(live, key=lambda r: (SURPLUS_ORDER[plan.state_of(r)], -r.created))[: len(live) - target]
    moved = {r.id for r in surplus}
    plan.moves = [m for m in plan.moves if m.replica_id not in moved]
    for r in surplus:
        if r.state == ReplicaState.ready:  # in the routing: it drains first
            plan.moves.append(Move(r.id, ReplicaState.draining, policy.surplus_reason))
        else:
            plan.moves.append(Move(r.id, ReplicaState.ended, policy.surplus_reason, cancel=True))
    return plan
