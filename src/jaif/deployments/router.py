"""/api/v1/deployments: operators create, list, show, scale and delete model deployments, and read their
reports (GPU-hours and energy per 1,000 tokens)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from jaif.compute.deps import ComputeDep
from jaif.deployments import reports, service
from jaif.deployments.schemas import (
    DeploymentCreate,
    DeploymentDeleted,
    DeploymentOut,
    DeploymentReport,
    DeploymentScale,
)
from jaif.identity.deps import Operator
from jaif.web.deps import DB

router = APIRouter(tags=["deployments"])


@router.post("/api/v1/deployments", status_code=201, response_model=DeploymentOut,
             summary="Deploy a model: replicas as jobs of a project (operators)")
def create(body: DeploymentCreate, session: DB, actor: Operator, compute: ComputeDep) -> DeploymentOut:
    deployment = service.create_deployment(
        session=session, compute=compute, name=body.name, model=body.model, engine=body.engine,
        partition=body.partition, project=body.project, gpus_per_replica=body.gpus_per_replica,
        min_replicas=body.min_replicas, max_replicas=body.max_replicas, target_inflight=body.target_inflight,
        idle_minutes=body.idle_minutes, walltime_minutes=body.walltime, command=body.command, aliases=body.aliases,
    )
    return service.deployment_out(session, deployment)


@router.get("/api/v1/deployments", response_model=list[DeploymentOut], summary="Model deployments (operators)")
def list_deployments(session: DB, actor: Operator) -> list[DeploymentOut]:
    return [service.deployment_out(session, d) for d in service.list_deployments(session=session)]


@router.get("/api/v1/deployments/{name}", response_model=DeploymentOut, summary="A deployment (operators)")
def show(name: str, session: DB, actor: Operator) -> DeploymentOut:
    return service.deployment_out(session, service.get_deployment(session=session, name=name))


@router.post("/api/v1/deployments/{name}/scale", response_model=DeploymentOut,
             summary="Change a deployment's minimum and maximum replicas (operators)")
def scale(name: str, body: DeploymentScale, session: DB, actor: Operator) -> DeploymentOut:
    deployment = service.scale_deployment(session=session, name=name, min_replicas=body.min_replicas,
                                          max_replicas=body.max_replicas)
    return service.deployment_out(session, deployment)


@router.delete("/api/v1/deployments/{name}", response_model=DeploymentDeleted,
               summary="Delete a deployment: its replicas drain first (operators)")
def delete(name: str, session: DB, actor: Operator) -> DeploymentDeleted:
    """``deleted`` when it had no replica (gone at once); else ``deleting``: its replicas leave the routing,
    drain and are stopped by the server's controller, and then it goes."""
    deployment = service.delete_deployment(session=session, name=name)
    if deployment is None:
        return DeploymentDeleted(name=name, state="deleted", draining=0)
    return DeploymentDeleted(name=name, state="deleting", draining=len(service.live(deployment)))


@router.get("/api/v1/deployments/{name}/report", response_model=DeploymentReport,
            summary="A deployment's GPU-hours, energy and tokens over a period (operators)")
def report(
    name: str, session: DB, actor: Operator, since: datetime | None = None, until: datetime | None = None
) -> DeploymentReport:
    """``since`` and ``until`` (ISO 8601; UTC when no zone is given): replica jobs that ended and requests
    made in [since, until); by default since the deployment was created, until now."""
    return reports.report(session=session, name=name, since=since, until=until)
