"""/api/v1/allocations: what projects may use. Members see their projects'; operators create and revoke."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from jaif.allocations import service
from jaif.allocations.schemas import AllocationIn, AllocationOut, SweepOut
from jaif.compute.deps import SitePartitions
from jaif.identity.deps import CurrentActor, Operator
from jaif.notify.deps import MailerDep
from jaif.web import api_paging
from jaif.web.api_errors import errors
from jaif.web.api_paging import PAGED, Paging
from jaif.web.deps import DB

router = APIRouter(prefix="/api/v1/allocations", tags=["allocations"])


@router.get("", response_model=list[AllocationOut], summary="Allocations of your projects",
            responses={**PAGED, **errors(400, 401, 404)})
def list_allocations(
    request: Request,
    response: Response,
    session: DB,
    actor: CurrentActor,
    page: Paging,
    project_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Literal["active", "expired", "exhausted", "revoked"] | None = None,
    resource: Literal["gpu_hours", "tokens"] | None = None,
) -> list[AllocationOut]:
    """Newest first; operators see every project's. Naming a project brings its token use up to date."""
    filters = {"project_id": project_id, "status": status, "resource": resource}
    found = service.list_allocations(session=session, actor=actor, **filters, limit=page.limit, offset=page.offset)
    api_paging.send(request, response, page, service.count_allocations(session=session, actor=actor, **filters))
    return [service.out(a) for a in found]


@router.post("", response_model=AllocationOut, status_code=201, summary="Allocate to a project (operators)",
             responses=errors(400, 401, 403, 404))
def create_allocation(
    body: AllocationIn, session: DB, actor: Operator, mailer: MailerDep, partitions: SitePartitions
) -> AllocationOut:
    """GPU-hours on a partition, or inference tokens (which become the project's token quota)."""
    allocation = service.create_allocation(
        session=session, actor=actor, mailer=mailer, project_id=body.project_id, resource=body.resource,
        amount=body.amount, partition=body.partition, starts_at=body.starts_at, ends_at=body.ends_at, days=body.days,
        partitions=partitions,
    )
    return service.out(allocation)


@router.post("/sweep", response_model=SweepOut, summary="Expire ended allocations now (operators)",
             responses=errors(401, 403))
def sweep(session: DB, actor: Operator) -> SweepOut:
    """What a running server does every minute: ended allocations expire, used-up ones are exhausted."""
    result = service.sweep(session=session)
    return SweepOut(expired=result.expired, exhausted=result.exhausted, projects_synced=result.projects_synced)


@router.get("/{allocation_id}", response_model=AllocationOut, summary="One allocation", responses=errors(401, 404))
def get_allocation(allocation_id: str, session: DB, actor: CurrentActor) -> AllocationOut:
    return service.out(service.get_allocation(session=session, actor=actor, allocation_id=allocation_id))


@router.post("/{allocation_id}/revoke", response_model=AllocationOut, summary="Revoke an allocation (operators)",
             responses=errors(401, 403, 404, 409))
def revoke(allocation_id: str, session: DB, actor: Operator) -> AllocationOut:
    return service.out(service.revoke_allocation(session=session, actor=actor, allocation_id=allocation_id))
