"""/api/v1/training-events: training events, seats and registration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from jaif.identity.deps import CurrentActor, Operator
from jaif.notify.deps import MailerDep
from jaif.training import service
from jaif.training.schemas import EventRegistration, TrainingEvent, TrainingEventCreate, TrainingEventUpdate
from jaif.web import api_paging
from jaif.web.api_errors import errors
from jaif.web.api_paging import PAGED, Paging
from jaif.web.deps import DB

router = APIRouter(prefix="/api/v1/training-events", tags=["training"])


@router.get("", summary="Training events with seats left", response_model=list[TrainingEvent],
            responses={**PAGED, **errors(400, 401)})
def list_events(
    request: Request,
    response: Response,
    session: DB,
    actor: CurrentActor,
    page: Paging,
    include_past: Annotated[bool, Query(description="Also events that have ended.")] = False,
) -> list[TrainingEvent]:
    """By start time."""
    found = service.list_events(
        session=session, actor=actor, include_past=include_past, limit=page.limit, offset=page.offset
    )
    total = service.count_events(session=session, actor=actor, include_past=include_past)
    api_paging.send(request, response, page, total)
    return found


@router.post("", status_code=201, summary="Plan an event (operators)", response_model=TrainingEvent)
def create_event(body: TrainingEventCreate, session: DB, actor: Operator) -> TrainingEvent:
    return service.create_event(session=session, actor=actor, **body.model_dump())


@router.get("/{event_id}", summary="A training event", response_model=TrainingEvent)
def get_event(event_id: str, session: DB, actor: CurrentActor) -> TrainingEvent:
    return service.get_event(session=session, actor=actor, event_id=event_id)


@router.patch("/{event_id}", summary="Change an event (operators)", response_model=TrainingEvent)
def update_event(
    event_id: str, body: TrainingEventUpdate, session: DB, actor: Operator, mailer: MailerDep
) -> TrainingEvent:
    return service.update_event(
        session=session, mailer=mailer, actor=actor, event_id=event_id, changes=body.model_dump(exclude_unset=True)
    )


@router.get("/{event_id}/registrations", summary="Registrations", response_model=list[EventRegistration],
            responses={**PAGED, **errors(400, 401, 404)})
def list_registrations(
    request: Request, response: Response, event_id: str, session: DB, actor: CurrentActor, page: Paging
) -> list[EventRegistration]:
    """Operators see everyone's (seats first, then the waitlist in order, then cancelled); others only their own."""
    found = service.list_registrations(session=session, actor=actor, event_id=event_id)
    return api_paging.cut(found, request, response, page)


@router.post("/{event_id}/registrations", status_code=201, summary="Register", response_model=EventRegistration)
def register(event_id: str, session: DB, actor: CurrentActor, mailer: MailerDep) -> EventRegistration:
    """Takes a seat, or a place on the waitlist when the seats are gone (see ``status``)."""
    return service.register(session=session, mailer=mailer, actor=actor, event_id=event_id)


@router.delete(
    "/{event_id}/registrations/{registration_id}", summary="Cancel a registration", response_model=EventRegistration
)
def cancel(
    event_id: str, registration_id: str, session: DB, actor: CurrentActor, mailer: MailerDep
) -> EventRegistration:
    """Your own, or anyone's for operators. The seat goes to the first on the waitlist."""
    return service.cancel(
        session=session, mailer=mailer, actor=actor, event_id=event_id, registration_id=registration_id
    )
