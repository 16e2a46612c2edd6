"""The deployment controller: every ``deployments.interval_s`` the server (runtime.py) runs ``tick``,
which, per deployment, observes its replicas (their jobs' states from the scheduler, where they listen,
their readiness or health check), asks plan.py what to do, and does it through the services.

Where a replica listens: its script writes ``NODE PORT`` to ``endpoint`` in its job's directory
(engines.py); the controller reads it once the job runs. Under the local scheduler the node is always
127.0.0.1; under Slurm it must be one of the names of the job's nodes (the scheduler's: node name,
hostname or address), else the replica is not routed: it cannot point the gateway elsewhere.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from jaif.compute.backend import Compute
from jaif.compute.models import Job, JobState
from jaif.config import DeploymentSettings
from jaif.db.base import utcnow
from jaif.deployments import engines, service
from jaif.deployments.autoscale import ScaleState, Scaling, decide
from jaif.deployments.models import Deployment, DeploymentReplica, DeploymentState, ReplicaState
from jaif.deployments.plan import Observed, Policy, make_plan
from jaif.errors import JaifError

log = logging.getLogger(__name__)

NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,199}$|^[0-9a-fA-F:]{2,39}$")


class Prober(Protocol):
    def __call__(self, url: str, *, key: str | None) -> bool:
        """GET ``url`` with the replica's key; True on a 200 answer."""
        ...


@dataclass
class HttpProber:
    timeout_s: float

    def __call__(self, url: str, *, key: str | None) -> bool:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            return httpx.get(url, headers=headers, timeout=self.timeout_s).status_code == 200
        except httpx.HTTPError:
            return False


def read_endpoint(workdir: str, *, local: bool) -> tuple[str, int] | None:
    """(node, port) from the replica's ``endpoint`` file, or None while it has none (or nonsense)."""
    try:
        fd = os.open(Path(workdir) / "endpoint", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        words = f.read(512).decode("ascii", errors="replace").split()
    if len(words) != 2 or not words[1].isdigit() or not 0 < int(words[1]) < 65536 or not NODE.match(words[0]):
        return None
    return ("127.0.0.1" if local else words[0]), int(words[1])


@dataclass
class Controller:
    session_factory: Callable[[], AbstractContextManager[Session]]
    compute: Compute
    settings: DeploymentSettings
    probe: Prober
    # What every gateway process reported (service.read_load); tests give their own.
    load_of: Callable[[Session], service.Load] | None = None
    leads: Callable[[], bool] = lambda: True  # whether this server runs the controller now (leader.py)
    clock: Callable[[], float] = time.monotonic
    _checked: dict[str, float] = field(default_factory=dict)  # replica id -> when its health was last checked
    _scaling: dict[str, ScaleState] = field(default_factory=dict)  # deployment id -> the autoscaler's state
    _load: service.Load = field(default_factory=service.Load)  # this tick's
    _cleaned: float = float("-inf")  # when old load reports were last deleted
    busy: bool = False  # after a tick: a replica is queued or starting, or requests are held (ticks come faster)
    # For metrics (runtime.py), after each deployment's reconciling: its name, the replicas wanted, the
    # direction of a scaling decision taken now ("up", "down" or ""), and its live replicas per state.
    on_tick: Callable[[str, int, str, dict[str, int]], None] = lambda name, want, direction, states: None
    _direction: str = ""

    def outstanding(self, url: str) -> int:
        """Requests in flight on a replica URL, in every gateway process (their fresh reports)."""
        return self._load.inflight.get(url, 0)

    def read_load(self, session: Session) -> service.Load:
        if self.load_of is not None:
            return self.load_of(session)
        return service.read_load(session, fresh_s=self.settings.load_fresh_s)

    def desired(self, session: Session, deployment: Deployment, replicas: list[DeploymentReplica]) -> int:
        """The replicas the deployment wants now: the autoscaler's count (autoscale.py), 0 when deleting."""
        self._direction = ""
        if deployment.state == DeploymentState.deleting:
            self._scaling.pop(deployment.id, None)
            return 0
        scaling = Scaling(deployment.min_replicas, deployment.max_replicas, deployment.target_inflight,
                          self.settings.scale_up_window_s, self.settings.scale_down_window_s,
                          idle_s=deployment.idle_minutes * 60)
        # The gateways report a deployment under its model's name (an alias resolves to it before routing).
        held = self._load.held.get(deployment.name, 0)
        inflight = sum(self.outstanding(r.url) for r in replicas if r.url) + held
        last = self._load.last.get(deployment.name, 0.0)
        if last and (deployment.last_request_at is None or last > deployment.last_request_at.timestamp() + 1):
            deployment.last_request_at = datetime.fromtimestamp(last, UTC)
        idle_s = (utcnow() - deployment.last_request_at).total_seconds() if deployment.last_request_at else None
        counted = sum(1 for r in replicas
                      if r.state in (ReplicaState.pending, ReplicaState.starting, ReplicaState.ready))
        state = self._scaling.setdefault(deployment.id, ScaleState())
        before = state.current
        want, why = decide(scaling, state, now=self.clock(), inflight=inflight, idle_s=idle_s, running=counted)
        if why:
            log.info("deployment %s: %s", deployment.name, why)
            service.record_event(session, deployment, "scale", why)
        self._direction = "" if before is None or want == before else ("up" if want > before else "down")
        return want

    def policy(self, deployment: Deployment, now: datetime, desired: int) -> Policy:
        s = self.settings
        crashes, since = service.crashes(deployment, now)
        handover = min(s.handover_s, deployment.walltime_minutes * 60 / 2)  # never at once for short limits
        return Policy(desired=desired, max_replicas=deployment.max_replicas,
                      handover_s=handover, end_margin_s=min(60.0, handover / 4),
                      start_timeout_s=s.start_timeout_s, health_failures=s.health_failures, drain_s=s.drain_s,
                      drain_timeout_s=s.drain_timeout_s, restart_backoff_s=s.restart_backoff_s,
                      restart_backoff_max_s=s.restart_backoff_max_s, crashes=crashes, since_crash_s=since,
                      surplus_reason="deleted" if deployment.state == DeploymentState.deleting
                      else "scaled to zero (idle)" if desired == 0 else "scaled down")

    def due(self, replica: DeploymentReplica, state: ReplicaState) -> bool:
        """Whether to check the replica now: every tick while it starts; a ready one every health_interval_s
        (an engine busy with a long request may not answer a check at once)."""
        if state == ReplicaState.starting:
            return True
        now = self.clock()
        if now - self._checked.get(replica.id, float("-inf")) < self.settings.health_interval_s:
            return False
        self._checked[replica.id] = now
        return True

    def tick(self) -> bool:
        """Reconcile every deployment once; True when a replica entered or left the routing. Only the
        server that leads does anything."""
        if not self.leads():
            return False
        with self.session_factory() as session:
            names = list(session.scalars(select(Deployment.name).order_by(Deployment.name)))
            self._load = self.read_load(session) if names else service.Load()
            if self.clock() - self._cleaned >= 3600:  # an hourly write, not one every tick
                service.forget_old_load(session)
                self._cleaned = self.clock()
        changed = False
        self.busy = any(self._load.held.values())
        for name in names:
            try:
                # The jobs' states and where replicas listen, in one short transaction; the checks over HTTP
                # outside any (on SQLite a transaction that writes holds the database's one write lock,
                # which the gateways' usage flushes wait for); then the plan, in another.
                with self.session_factory() as session:
                    checks = self.checks(session, name)
                results = {replica_id: self.probe(url, key=key) for replica_id, url, key in checks}
                with self.session_factory() as session:
                    changed |= self.reconcile(session, name, results)
            except Exception:  # one deployment's trouble (a scheduler refusing) must not stop the others
                log.exception("deployment %s: reconciling failed; tried again in %.1f s", name,
                              self.settings.interval_s)
        return changed

    def checks(self, session: Session, name: str) -> list[tuple[str, str, str | None]]:
        """Refresh the replicas' jobs, read where the running ones listen, and say which to check now:
        (replica id, the readiness or health URL, the replica's key)."""
        deployment = service.get_deployment(session=session, name=name)
        key = service.replica_key(session, deployment)  # read before anything changes (no flush)
        replicas = service.live(deployment)
        jobs = service.replica_jobs(session=session, compute=self.compute, replicas=replicas)
        found = []
        for replica in replicas:
            job = jobs.get(replica.id)
            if job is None or JobState(job.state) != JobState.running:
                continue
            if replica.port is None:
                where = read_endpoint(replica.workdir, local=replica.scheduler == "local")
                if where is not None and replica.scheduler != "local" and where[0] not in job.hosts.split():
                    self.refuse_node(deployment, replica, where[0], job.hosts)
                elif where is not None:
                    replica.node, replica.port = where
            state = ReplicaState(replica.state)
            url = replica.url
            if url is not None and state in (ReplicaState.starting, ReplicaState.ready) and self.due(replica, state):
                found.append((replica.id, url.removesuffix("/v1") + engines.get(deployment.engine).readiness_path,
                              key))
        return found

    def observe(
        self, deployment: Deployment, replica: DeploymentReplica, job: Job | None, now: datetime,
        probe: bool | None = None,
    ) -> Observed:
        """``probe``: the result of the replica's check made now (``checks``), None when none was."""
        state = ReplicaState(replica.state)
        job_state = JobState(job.state) if job is not None else None
        url = replica.url
        if probe is not None and state in (ReplicaState.starting, ReplicaState.ready):
            replica.health_failures = 0 if probe else replica.health_failures + 1
        if state == ReplicaState.pending and job is not None and job_state == JobState.pending and job.reason:
            replica.reason = job.reason[:300]  # Slurm's reason while it queues
        return Observed(
            id=replica.id, state=state, age_s=(now - replica.state_since).total_seconds(), job=job_state,
            job_reason=job.reason if job is not None else "", exit_code=job.exit_code if job is not None else None,
            listening=url is not None, probe=probe,
            failures=replica.health_failures if state == ReplicaState.ready else 0,
            outstanding=self.outstanding(url) if url else 0, created=replica.created_at.timestamp(),
            was_ready=replica.ready_at is not None, remaining_s=self.remaining(deployment, job, now),
        )

    @staticmethod
    def refuse_node(deployment: Deployment, replica: DeploymentReplica, node: str, hosts: str) -> None:
        """The replica's endpoint file names a node its job does not hold: never routed there (the gateway
        would send the replica's key to it). Said once; the start timeout replaces the replica."""
        why = (f"its endpoint names node {node!r}, not one of its job's nodes "
               f"({', '.join(hosts.split()) or 'none reported yet'}): not routed")[:300]
        if replica.reason != why:
            log.warning("deployment %s: replica %s (job %s): %s", deployment.name, replica.id, replica.job_id, why)
            replica.reason = why

    @staticmethod
    def remaining(deployment: Deployment, job: Job | None, now: datetime) -> float | None:
        """Seconds until the replica's job reaches its time limit (None while it has not started)."""
        if job is None or job.started_at is None or JobState(job.state) != JobState.running:
            return None
        return deployment.walltime_minutes * 60 - (now - job.started_at).total_seconds()

    def reconcile(self, session: Session, name: str, probes: dict[str, bool] | None = None) -> bool:
        """Plan and act on one deployment; ``probes``: the checks made since ``checks`` (by replica id).
        Called alone (tests), it refreshes and checks itself."""
        if probes is None:
            checks = self.checks(session, name)
            probes = {replica_id: self.probe(url, key=key) for replica_id, url, key in checks}
        deployment = service.get_deployment(session=session, name=name)
        replicas = service.live(deployment)
        jobs = service.replica_jobs(session=session, compute=self.compute, replicas=replicas, refresh=False)
        now = utcnow()
        observed = [self.observe(deployment, r, jobs.get(r.id), now, probes.get(r.id)) for r in replicas]
        desired = self.desired(session, deployment, replicas)
        if desired == 0 and deployment.blocked:
            deployment.blocked = None  # nothing is being submitted: the next request tries again (status: cold)
        plan = make_plan(self.policy(deployment, now, desired), observed)
        if plan.waiting:
            log.info("deployment %s: %s", name, plan.waiting)
        by_id = {r.id: r for r in replicas}
        changed = False
        for move in plan.moves:
            changed |= service.move(session=session, compute=self.compute, replica=by_id[move.replica_id], to=move)
        for _ in range(plan.submit):
            try:
                replica = service.submit_replica(session=session, compute=self.compute, deployment=deployment,
                                                 python=str(self.settings.python) if self.settings.python else None)
            except JaifError as exc:  # the allocation, the scheduler: said (once), and tried again next tick
                if deployment.blocked != exc.message[:300]:
                    log.warning("deployment %s: could not submit a replica: %s", name, exc.message)
                    service.record_event(session, deployment, "replica", f"could not submit a replica: {exc.message}")
                deployment.blocked = exc.message[:300]  # its requests are refused meanwhile, not held
                break
            deployment.blocked = None
            said = (f"submitted replica {replica.id} (job {replica.job_id}): "
                    f"{len(service.live(deployment))} of {desired} wanted")
            log.info("deployment %s: %s", name, said)
            service.record_event(session, deployment, "replica", said)
        states = {state.value: 0 for state in ReplicaState if state.live}
        for replica in service.live(deployment):
            states[replica.state] += 1
        self.on_tick(name, desired, self._direction, states)
        self.busy |= bool(states[ReplicaState.pending.value] or states[ReplicaState.starting.value])
        if deployment.state == DeploymentState.deleting and not service.live(deployment):
            service.remove(session=session, deployment=deployment)
            changed = True
        return changed
