"""/api/v1/calls: the access calls. Everyone may read the active ones; operators create and change them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from jaif.applications.time_to_access import for_call
from jaif.calls import service
from jaif.calls.schemas import CallIn, CallOut, CallPatch, TimeToAccessOut
from jaif.compute.deps import SitePartitions
from jaif.identity.deps import Operator, OptionalActor
from jaif.web import api_paging
from jaif.web.api_errors import errors
from jaif.web.api_paging import PAGED, Paging
from jaif.web.deps import DB

router = APIRouter(prefix="/api/v1/calls", tags=["calls"])


@router.get("", response_model=list[CallOut], summary="Access calls", responses={**PAGED, **errors(400, 401)})
def list_calls(
    request: Request, response: Response, session: DB, actor: OptionalActor, page: Paging,
    include_inactive: bool = False,
) -> list[CallOut]:
    """Active calls by opening date; operators may ask for inactive ones too."""
    calls = service.list_calls(session=session, actor=actor, include_inactive=include_inactive)
    return [service.out(c) for c in api_paging.cut(calls, request, response, page)]


@router.post("", response_model=CallOut, status_code=201, summary="Create a call (operators)",
             responses=errors(400, 401, 403, 409))
def create_call(body: CallIn, session: DB, actor: Operator, partitions: SitePartitions) -> CallOut:
    return service.out(service.create_call(session=session, actor=actor, data=body, partitions=partitions))


@router.get("/{ref}", response_model=CallOut, summary="A call, by id or slug", responses=errors(401, 404))
def get_call(ref: str, session: DB, actor: OptionalActor) -> CallOut:
    return service.out(service.get_call(session=session, ref=ref))


@router.patch("/{ref}", response_model=CallOut, summary="Change a call (operators)",
              responses=errors(400, 401, 403, 404))
def update_call(ref: str, body: CallPatch, session: DB, actor: Operator, partitions: SitePartitions) -> CallOut:
    return service.out(service.update_call(session=session, actor=actor, ref=ref, data=body, partitions=partitions))


@router.get("/{ref}/time-to-access", response_model=TimeToAccessOut, summary="How fast the call gives access",
            responses=errors(401, 404))
def time_to_access(ref: str, session: DB, actor: OptionalActor) -> TimeToAccessOut:
    """Working days from submission to allocation: median, 90th percentile, share within the target."""
    return for_call(session, service.get_call(session=session, ref=ref))
