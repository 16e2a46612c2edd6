"""/api/v1/support-requests: the support desk for scripts, with the portal's permissions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from jaif.support import service
from jaif.support.models import SupportCategory, SupportStatus
from jaif.support.schemas import (
    SupportAssignment,
    SupportReplyCreate,
    SupportRequestCreate,
    SupportRequestDetail,
    SupportRequestSummary,
    SupportStatusChange,
)
from jaif.web.deps import DB, CurrentActor, MailerDep, Operator

router = APIRouter(prefix="/api/v1/support-requests", tags=["support desk"])


@router.get("", summary="Support requests you may see", response_model=list[SupportRequestSummary])
def list_requests(
    session: DB,
    actor: CurrentActor,
    status: SupportStatus | None = None,
    category: SupportCategory | None = None,
    assignee_id: Annotated[str | None, Query(max_length=32, description="An operator's id, or 'none'.")] = None,
    project_id: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[SupportRequestSummary]:
    """Yours and those of your projects; operators see all."""
    return service.list_requests(
        session=session,
        actor=actor,
        status=status,
        category=category,
        assignee_id=assignee_id,
        project_id=project_id,
        limit=limit,
        offset=offset,
    )


@router.post("", status_code=201, summary="Ask for help", response_model=SupportRequestDetail)
def create_request(
    body: SupportRequestCreate, session: DB, actor: CurrentActor, mailer: MailerDep
) -> SupportRequestDetail:
    return service.create_request(
        session=session,
        mailer=mailer,
        actor=actor,
        category=body.category,
        subject=body.subject,
        body=body.body,
        project_id=body.project_id,
    )


@router.get("/{request_id}", summary="A support request with its replies", response_model=SupportRequestDetail)
def get_request(request_id: str, session: DB, actor: CurrentActor) -> SupportRequestDetail:
    return service.get_request(session=session, actor=actor, request_id=request_id)


@router.post("/{request_id}/replies", status_code=201, summary="Reply", response_model=SupportRequestDetail)
def reply(
    request_id: str, body: SupportReplyCreate, session: DB, actor: CurrentActor, mailer: MailerDep
) -> SupportRequestDetail:
    """Requester, project members and operators; ``internal`` notes are for operators only."""
    return service.add_reply(
        session=session, mailer=mailer, actor=actor, request_id=request_id, body=body.body, internal=body.internal
    )


@router.put("/{request_id}/status", summary="Change the status", response_model=SupportRequestDetail)
def set_status(
    request_id: str, body: SupportStatusChange, session: DB, actor: CurrentActor, mailer: MailerDep
) -> SupportRequestDetail:
    """Operators set any status; the requester may close and reopen."""
    return service.set_status(session=session, mailer=mailer, actor=actor, request_id=request_id, status=body.status)


@router.put("/{request_id}/assign", summary="Assign to an operator", response_model=SupportRequestDetail)
def assign(
    request_id: str, body: SupportAssignment, session: DB, actor: Operator, mailer: MailerDep
) -> SupportRequestDetail:
    return service.assign(
        session=session, mailer=mailer, actor=actor, request_id=request_id, assignee_id=body.assignee_id
    )
