"""/api/v1/support-requests: the support desk for scripts, with the portal's permissions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from jaif.identity.deps import CurrentActor, Operator
from jaif.notify.deps import MailerDep
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
from jaif.web import api_paging
from jaif.web.api_errors import errors
from jaif.web.api_paging import PAGED, Paging
from jaif.web.deps import DB

router = APIRouter(prefix="/api/v1/support-requests", tags=["support desk"])


@router.get("", summary="Support requests you may see", response_model=list[SupportRequestSummary],
            responses={**PAGED, **errors(400, 401)})
def list_requests(
    request: Request,
    response: Response,
    session: DB,
    actor: CurrentActor,
    page: Paging,
    status: SupportStatus | None = None,
    category: SupportCategory | None = None,
    assignee_id: Annotated[str | None, Query(max_length=32, description="An operator's id, or 'none'.")] = None,
    project_id: Annotated[str | None, Query(max_length=32)] = None,
) -> list[SupportRequestSummary]:
    """Yours and those of your projects; operators see all. Newest activity first."""
    filters = {"status": status, "category": category, "assignee_id": assignee_id, "project_id": project_id}
    found = service.list_requests(session=session, actor=actor, **filters, limit=page.limit, offset=page.offset)
    api_paging.send(request, response, page, service.count_requests(session=session, actor=actor, **filters))
    return found


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
