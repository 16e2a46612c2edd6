"""Deployments: create (validated against the engine, the partition and the project), list, show,
scale, delete (drains first); and what the controller (controller.py) does to replicas: submit one as a
job of the deployment's project, move it between states, put it in or take it out of the routing.

Deployments are an operator's business: the CLI and ``/api/v1/deployments`` (operators only) call this.
A deployment serves through a gateway model of its name (inference/service.py ``add_model(deployed=True)``),
so keys, metering, quotas and rate limits are those of every model.
"""

from __future__ import annotations

import logging
import re
import secrets
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from jaif.access.schemas import CLI_ACTOR
from jaif.compute import service as compute_service
from jaif.compute.backend import Compute
from jaif.compute.models import Job
from jaif.compute.weights import resolve_weights
from jaif.db.base import utcnow
from jaif.deployments import engines
from jaif.deployments.models import (
    Deployment,
    DeploymentEvent,
    DeploymentReplica,
    DeploymentState,
    GatewayLoad,
    ReplicaState,
)
from jaif.deployments.plan import Move
from jaif.deployments.schemas import DeploymentOut, DeploymentStatus, EventOut, ReplicaOut
from jaif.errors import Conflict, InvalidRequest, NotFound
from jaif.inference import service as inference
from jaif.inference.backends.builtin import local_weights
from jaif.inference.models import Model, ModelAlias
from jaif.metering.models import UsageRecord

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
SHOWN_ENDED = 3  # ended or failed replicas shown besides the live ones
SHOWN_EVENTS = 20  # the controller's latest decisions shown with a deployment
KEPT_EVENTS = 200  # and kept per deployment
# A cold start's estimate before a deployment has a start of its own to go by (seconds, per engine).
FIRST_START_S = {"llama-cpp": 30.0, "command": 60.0, "vllm": 300.0}


def resolve_model(session: Session, model: str) -> str:
    """The weights ``model`` stands for: a built-in model's name (``smollm2-135m-instruct``), a gateway or
    catalogue model with local weights (compute/weights.py), else ``model`` itself (a path, or an
    engine's own model id)."""
    builtin = local_weights(inference.BUILTIN_SCHEME + model)
    if builtin is not None:
        return str(builtin)
    return resolve_weights(session, model)


def _check_counts(min_replicas: int, max_replicas: int) -> None:
    if min_replicas < 0:
        raise InvalidRequest("--min-replicas must be 0 or more", param="min_replicas")
    if max_replicas < 1:
        raise InvalidRequest("--max-replicas must be 1 or more", param="max_replicas")
    if min_replicas > max_replicas:
        raise InvalidRequest(f"--min-replicas ({min_replicas}) is more than --max-replicas ({max_replicas})",
                             param="min_replicas")


def create_deployment(
    *, session: Session, compute: Compute, name: str, model: str, engine: str, partition: str, project: str,
    gpus_per_replica: int = 0, min_replicas: int = 1, max_replicas: int = 1, target_inflight: int = 4,
    idle_minutes: float = 30, walltime_minutes: int = 60, command: str | None = None,
    aliases: list[str] | None = None,
) -> Deployment:
    if not NAME.match(name):
        raise InvalidRequest(f"{name!r} is not a deployment name: letters, digits and . _ : - (at most 200), "
                             "starting with a letter or digit", param="name")
    if session.scalar(select(Deployment).where(Deployment.name == name)):
        raise Conflict(f"deployment {name!r} exists already", param="name")
    adapter = engines.get(engine)
    _check_counts(min_replicas, max_replicas)
    for value, what in ((target_inflight, "target_inflight"), (walltime_minutes, "walltime")):
        if value < 1:
            raise InvalidRequest(f"--{what.replace('_', '-')} must be 1 or more", param=what)
    if not 0 < idle_minutes <= 525600:  # NaN too
        raise InvalidRequest("--idle-minutes must be more than 0 (and at most a year)", param="idle_minutes")
    part = compute_service.get_partition(compute, partition)
    if gpus_per_replica < 0 or gpus_per_replica > part.gpus_per_node:
        raise InvalidRequest(f"partition {part.name} has {part.gpus_per_node} GPUs per node; a replica runs on one "
                             f"node, so --gpus-per-replica is 0 to {part.gpus_per_node}", param="gpus_per_replica")
    if part.max_walltime_min is not None and walltime_minutes > part.max_walltime_min:
        raise InvalidRequest(f"partition {part.name} allows at most {part.max_walltime_min} minutes; "
                             f"--walltime {walltime_minutes} asked for", param="walltime")
    owner = compute_service.find_project(session, CLI_ACTOR, project)
    weights = resolve_model(session, model)
    adapter.validate(model=weights, gpus=gpus_per_replica, command=command)
    if compute.scheduler.kind == "local" and adapter.name == "llama-cpp" and not Path(weights).is_file():
        raise InvalidRequest(f"no weights at {weights!r} on this machine", param="model")
    served = inference.add_model(
        session=session, name=name, upstreams=[], deployed=True,
        description=f"deployment {name}: {engine} replicas of {model}",
        upstream_key=secrets.token_urlsafe(32),  # the replicas' own key: only the gateway can use them
    )
    deployment = Deployment(
        name=name, model=model, engine=adapter.name, partition=part.name, gpus_per_replica=gpus_per_replica,
        min_replicas=min_replicas, max_replicas=max_replicas, target_inflight=target_inflight,
        idle_minutes=idle_minutes, walltime_minutes=walltime_minutes, project_id=owner.id,
        command=command, model_id=served.id, state=DeploymentState.active,
    )
    session.add(deployment)
    session.flush()
    for alias in aliases or []:
        inference.set_alias(session=session, alias=alias, model_name=name)
    return deployment


def _query():
    return select(Deployment).options(selectinload(Deployment.replicas), selectinload(Deployment.project))


def list_deployments(*, session: Session) -> list[Deployment]:
    return list(session.scalars(_query().order_by(Deployment.name)))


def get_deployment(*, session: Session, name: str) -> Deployment:
    found = session.scalar(_query().where(Deployment.name == name))
    if found is None:
        raise NotFound(f"no deployment {name!r}", param="name")
    return found


def scale_deployment(
    *, session: Session, name: str, min_replicas: int | None = None, max_replicas: int | None = None
) -> Deployment:
    deployment = get_deployment(session=session, name=name)
    if min_replicas is None and max_replicas is None:
        raise InvalidRequest("give --min, --max or both", param="min_replicas")
    if deployment.state != DeploymentState.active:
        raise Conflict(f"deployment {name!r} is being deleted", param="name")
    new_min = deployment.min_replicas if min_replicas is None else min_replicas
    new_max = deployment.max_replicas if max_replicas is None else max_replicas
    _check_counts(new_min, new_max)
    deployment.min_replicas, deployment.max_replicas = new_min, new_max
    session.flush()
    return deployment


def delete_deployment(*, session: Session, name: str) -> Deployment | None:
    """Mark it deleting: the controller drains and stops its replicas, then removes it. Gone at once
    (None) when it has no live replica."""
    deployment = get_deployment(session=session, name=name)
    deployment.state = DeploymentState.deleting
    session.flush()
    if not live(deployment):
        remove(session=session, deployment=deployment)
        return None
    return deployment


def remove(*, session: Session, deployment: Deployment) -> None:
    """The deployment and its gateway model (with its aliases), once no replica of it is left."""
    if deployment.model_id and (model := session.get(Model, deployment.model_id)) is not None:
        session.delete(model)
    session.delete(deployment)
    session.flush()
    log.info("deployment %s: removed (its replicas have ended)", deployment.name)


def served_models(session: Session) -> dict[str, dict]:
    """The gateway models of active deployments, with their status (``status``): listed and answered
    even while no replica is ready (the gateway holds their requests: a cold start)."""
    now = utcnow()
    return {d.model_id: status(d, now).model_dump() for d in session.scalars(
        _query().where(Deployment.state == DeploymentState.active, Deployment.model_id.is_not(None)))
        if d.model_id}


def status_of_model(session: Session, model_id: str) -> DeploymentStatus | None:
    """The status of the deployment that serves the gateway model ``model_id`` (None: no deployment does)."""
    deployment = session.scalar(_query().where(Deployment.model_id == model_id,
                                               Deployment.state == DeploymentState.active))
    return status(deployment, utcnow()) if deployment is not None else None


def start_estimate(deployment: Deployment) -> float:
    """Seconds a replica of it takes from submission to ready: the median of its last five starts."""
    starts = [(r.ready_at - r.created_at).total_seconds() for r in deployment.replicas if r.ready_at is not None]
    return statistics.median(starts[-5:]) if starts else FIRST_START_S.get(deployment.engine, 60.0)


def status(deployment: Deployment, now: datetime) -> DeploymentStatus:
    """ready (a replica serves), starting (one is on its way: estimate from when it was submitted), or
    cold (none: the next request starts one)."""
    live_ones = live(deployment)
    ready = sum(1 for r in live_ones if r.state == ReplicaState.ready)
    if ready:
        return DeploymentStatus(state="ready", ready_replicas=ready, estimated_ready_s=None)
    estimate = start_estimate(deployment)
    starting = [r for r in live_ones if r.state in (ReplicaState.pending, ReplicaState.starting)]
    if not starting and deployment.blocked:
        # The scheduler's or the allocation's own words are the operators' (their page, `jaif deployment
        # show`, the server's log): clients of every project read this status.
        return DeploymentStatus(state="unavailable", ready_replicas=0, estimated_ready_s=None,
                                reason="no replica can be started now; the operators are told why")
    if not starting:
        return DeploymentStatus(state="cold", ready_replicas=0, estimated_ready_s=round(estimate, 1))
    elapsed = (now - min(r.created_at for r in starting)).total_seconds()
    return DeploymentStatus(state="starting", ready_replicas=0,
                            estimated_ready_s=round(max(1.0, estimate - elapsed), 1))


def record_event(session: Session, deployment: Deployment, kind: str, message: str) -> None:
    """A decision of the controller, kept for the operator (the newest KEPT_EVENTS per deployment)."""
    session.add(DeploymentEvent(deployment_id=deployment.id, kind=kind, message=message[:500]))
    session.flush()
    oldest_kept = session.scalar(
        select(DeploymentEvent.id).where(DeploymentEvent.deployment_id == deployment.id)
        .order_by(DeploymentEvent.id.desc()).offset(KEPT_EVENTS - 1).limit(1))
    if oldest_kept is not None:
        session.execute(delete(DeploymentEvent).where(DeploymentEvent.deployment_id == deployment.id,
                                                      DeploymentEvent.id < oldest_kept))


def events(session: Session, deployment: Deployment, limit: int = SHOWN_EVENTS) -> list[DeploymentEvent]:
    return list(session.scalars(select(DeploymentEvent).where(DeploymentEvent.deployment_id == deployment.id)
                                .order_by(DeploymentEvent.id.desc()).limit(limit)))


def tokens_per_second(session: Session, urls: list[str], window_s: float = 60.0) -> dict[str, float]:
    """Completion tokens per second each replica URL served over the last ``window_s`` (usage records)."""
    if not urls:
        return {}
    since = utcnow() - timedelta(seconds=window_s)
    rows = session.execute(
        select(UsageRecord.replica, func.coalesce(func.sum(UsageRecord.completion_tokens), 0))
        .where(UsageRecord.replica.in_(urls), UsageRecord.created_at >= since).group_by(UsageRecord.replica))
    return {url: round(float(total) / window_s, 2) for url, total in rows if url}


@dataclass
class ReplicaRow:
    replica: ReplicaOut
    inflight: int
    tokens_per_s: float | None


@dataclass
class Overview:
    """One deployment as the operator's page shows it."""

    deployment: DeploymentOut
    replicas: list[ReplicaRow]
    held: int
    blocked: str | None


def overview(session: Session, *, fresh_s: float) -> list[Overview]:
    """Every deployment with its replicas' in-flight requests (every gateway's reports) and tokens per
    second, its requests held, and why it cannot start a replica, if so."""
    load = read_load(session, fresh_s=fresh_s)
    items = list_deployments(session=session)
    urls = [r.url for d in items for r in d.replicas if r.url]
    rates = tokens_per_second(session, urls)
    found = []
    for d in items:
        out = deployment_out(session, d)
        rows = []
        for r in out.replicas:
            url = next((x.url for x in d.replicas if x.id == r.id), None)
            live_one = ReplicaState(r.state).live
            rows.append(ReplicaRow(r, load.inflight.get(url, 0) if url and live_one else 0,
                                   rates.get(url, 0.0) if url and live_one else None))
        found.append(Overview(out, rows, load.held.get(d.name, 0), d.blocked))
    return found


# -- the load every gateway process reports ----------------------------------------------------------


@dataclass
class Load:
    """The fresh reports of every gateway process, summed."""

    inflight: dict[str, int] = field(default_factory=dict)  # replica URL -> requests in flight on it
    held: dict[str, int] = field(default_factory=dict)  # model name -> requests held for a replica
    last: dict[str, float] = field(default_factory=dict)  # model name -> its newest request (epoch seconds)
    instances: int = 0  # processes whose reports are fresh


def report_load(session: Session, *, instance: str, load: dict) -> None:
    """This process's report (see GatewayLoad), replacing its previous one."""
    row = session.get(GatewayLoad, instance)
    if row is None:
        session.add(GatewayLoad(instance=instance, reported_at=utcnow(), load=load))
    else:
        row.reported_at, row.load = utcnow(), load
    session.flush()


def forget_load(session: Session, *, instance: str) -> None:
    """A process that stops takes its report with it."""
    session.execute(delete(GatewayLoad).where(GatewayLoad.instance == instance))


def forget_old_load(session: Session, *, keep_s: float = 86400.0) -> None:
    """Delete the reports of processes silent for ``keep_s`` (their last requests were kept by then:
    the controller stores each deployment's newest in ``last_request_at``)."""
    session.execute(delete(GatewayLoad).where(GatewayLoad.reported_at < utcnow() - timedelta(seconds=keep_s)))


def read_load(session: Session, *, fresh_s: float) -> Load:
    """The sum of the reports younger than ``fresh_s`` (a process that died stops counting then); the last
    request of every report, fresh or not."""
    now = utcnow()
    total = Load()
    for row in session.scalars(select(GatewayLoad)):
        fresh = row.reported_at >= now - timedelta(seconds=fresh_s)
        total.instances += fresh
        for name, entry in (row.load or {}).items():
            if not isinstance(entry, dict):
                continue
            if isinstance(last := entry.get("last"), (int, float)):
                total.last[name] = max(total.last.get(name, 0.0), float(last))
            if not fresh:
                continue
            total.held[name] = total.held.get(name, 0) + int(entry.get("held") or 0)
            for url, n in (entry.get("inflight") or {}).items():
                total.inflight[url] = total.inflight.get(url, 0) + int(n)
    return total


def live(deployment: Deployment) -> list[DeploymentReplica]:
    return [r for r in deployment.replicas if ReplicaState(r.state).live]


def crashes(deployment: Deployment, now: datetime) -> tuple[int, float]:
    """The newest replicas in a row that failed before they were ever ready, and the seconds since the
    newest of them ended (the controller's restart backoff)."""
    count, since = 0, 0.0
    for replica in sorted(deployment.replicas, key=lambda r: r.created_at, reverse=True):
        if ReplicaState(replica.state).live:
            continue
        if replica.state != ReplicaState.failed or replica.ready_at is not None:
            break
        if count == 0 and replica.ended_at is not None:
            since = (now - replica.ended_at).total_seconds()
        count += 1
    return count, since


def replica_key(session: Session, deployment: Deployment) -> str | None:
    model = session.get(Model, deployment.model_id) if deployment.model_id else None
    return model.upstream_key if model else None


# -- what the controller does ------------------------------------------------------------------------


def submit_replica(
    *, session: Session, compute: Compute, deployment: Deployment, python: str | None = None
) -> DeploymentReplica:
    """A new replica: a job of the deployment's project, running the engine's script."""
    adapter = engines.get(deployment.engine)
    local = compute.scheduler.kind == "local"
    launch = engines.Launch(
        name=deployment.name, model=resolve_model(session, deployment.model), gpus=deployment.gpus_per_replica,
        bind="127.0.0.1" if local else "0.0.0.0", python=python or sys.executable, command=deployment.command,
    )
    environment = {"JAIF_REPLICA_KEY": replica_key(session, deployment) or ""}
    if local:
        environment["JAIF_REPLICA_NODE"] = "127.0.0.1"
    job = compute_service.submit_job(
        session=session, compute=compute, actor=CLI_ACTOR, project_name=deployment.project.name,
        partition=deployment.partition, gpus=deployment.gpus_per_replica, time_min=deployment.walltime_minutes,
        script=adapter.script(launch), name=f"deployment-{deployment.name}"[:200], environment=environment,
    )
    replica = DeploymentReplica(
        deployment_id=deployment.id, state=ReplicaState.pending, reason=job.reason or "submitted",
        scheduler=compute.scheduler.kind, job_id=job.job_id, job_ref=job.id, workdir=job.workdir,
    )
    # Appended, not session.add-ed first: adding it would flush it into the list's lazy load and then
    # append it a second time (the relationship's cascade adds it to the session).
    deployment.replicas.append(replica)
    session.flush()
    return replica


def replica_jobs(
    *, session: Session, compute: Compute, replicas: list[DeploymentReplica], refresh: bool = True
) -> dict[str, Job]:
    """The replicas' jobs (by replica id), their states refreshed from the scheduler (unless ``refresh``
    is False: as last refreshed)."""
    refs = {r.job_ref: r.id for r in replicas if r.job_ref}
    if not refs:
        return {}
    jobs = list(session.scalars(select(Job).where(Job.id.in_(list(refs)))))
    if refresh:
        compute_service.refresh_jobs(session=session, compute=compute, jobs=jobs)
    return {refs[j.id]: j for j in jobs}


def cancel_replica_job(*, session: Session, compute: Compute, replica: DeploymentReplica) -> None:
    try:
        compute_service.cancel_job(session=session, compute=compute, actor=CLI_ACTOR, job_id=replica.job_id)
    except NotFound:
        log.warning("deployment replica %s: its job %s is gone already", replica.id, replica.job_id)


def route(*, session: Session, deployment: Deployment, replica: DeploymentReplica, on: bool) -> bool:
    """Put the replica's URL into the deployment's gateway model, or take it out; True when it changed."""
    url = replica.url
    model = session.get(Model, deployment.model_id) if deployment.model_id else None
    if url is None or model is None:
        return False
    present = any(r.url == url for r in model.replicas)
    if on and not present:
        inference.add_replica(session=session, model_name=model.name, url=url)
        return True
    if not on and present:
        inference.remove_replica(session=session, model_name=model.name, url=url)
        return True
    return False


def move(*, session: Session, compute: Compute, replica: DeploymentReplica, to: Move) -> bool:
    """Apply one move of the plan; True when the routing changed."""
    deployment = replica.deployment
    state = ReplicaState(to.state)
    changed = route(session=session, deployment=deployment, replica=replica, on=state == ReplicaState.ready)
    if to.cancel:
        cancel_replica_job(session=session, compute=compute, replica=replica)
    if state != replica.state:
        log.info("deployment %s: replica %s (job %s) %s -> %s%s", deployment.name, replica.id, replica.job_id,
                 replica.state, state.value, f": {to.reason}" if to.reason else "")
        record_event(session, deployment, "replica", f"replica {replica.id} (job {replica.job_id}) "
                     f"{replica.state} -> {state.value}" + (f": {to.reason}" if to.reason else ""))
        replica.state = state
        replica.state_since = utcnow()
        if state == ReplicaState.ready:
            replica.ready_at = replica.state_since
        if not state.live:
            replica.ended_at = replica.state_since
    replica.reason = to.reason[:300]
    session.flush()
    return changed


def aliases_of(session: Session, deployment: Deployment) -> list[str]:
    if not deployment.model_id:
        return []
    return sorted(session.scalars(select(ModelAlias.alias).where(ModelAlias.model_id == deployment.model_id)))


def deployment_out(session: Session, deployment: Deployment) -> DeploymentOut:
    live_ones = live(deployment)
    ended = [r for r in deployment.replicas if not ReplicaState(r.state).live][-SHOWN_ENDED:]
    return DeploymentOut(
        name=deployment.name, model=deployment.model, engine=deployment.engine, partition=deployment.partition,
        project=deployment.project.name, gpus_per_replica=deployment.gpus_per_replica,
        min_replicas=deployment.min_replicas, max_replicas=deployment.max_replicas,
        target_inflight=deployment.target_inflight, idle_minutes=deployment.idle_minutes,
        walltime_minutes=deployment.walltime_minutes, command=deployment.command,
        aliases=aliases_of(session, deployment), state=deployment.state,
        ready_replicas=sum(1 for r in live_ones if r.state == ReplicaState.ready),
        status=status(deployment, utcnow()), last_request_at=deployment.last_request_at,
        replicas=[replica_out(r) for r in sorted(ended + live_ones, key=lambda r: r.created_at)],
        events=[EventOut(at=e.at, kind=e.kind, message=e.message) for e in events(session, deployment)],
        created_at=deployment.created_at,
    )


def replica_out(replica: DeploymentReplica) -> ReplicaOut:
    return ReplicaOut(
        id=replica.id, state=replica.state, reason=replica.reason, scheduler=replica.scheduler,
        job_id=replica.job_id, slurm_job_id=replica.slurm_job_id, node=replica.node, port=replica.port,
        created_at=replica.created_at, state_since=replica.state_since, ready_at=replica.ready_at,
        ended_at=replica.ended_at,
    )
