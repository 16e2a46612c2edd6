"""Training events: operators plan them, users register.

A registration takes a seat while there are seats and nobody waits; after that it joins the waitlist.
When a registered person cancels (or an operator adds seats) the longest-waiting people move up, and
are told by e-mail. Registration closes at ``registration_closes_at``, or at the start where none is
set; nobody registers after either. Unpublished events exist only for operators.

Registering locks the event row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE
serialises writers anyway), so two people never take the last seat at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

from jaif.access.models import User
from jaif.access.schemas import Actor
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jaif.notify.mail import Mailer
from jaif.training import schemas
from jaif.training.models import TrainingEvent, TrainingRegistration
from jaif.training.schemas import RegistrationStatus

_ID = re.compile(r"^[0-9a-f]{32}$")
_TEXT = {"title": schemas.TITLE_MAX, "description": schemas.DESCRIPTION_MAX, "location": schemas.LOCATION_MAX}
_TIMES = ("starts_at", "ends_at", "registration_closes_at")
EDITABLE = frozenset({*_TEXT, *_TIMES, "seats", "is_published"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # line breaks and tabs are fine in a description
_ONE_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _text(value: Any, *, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{param} must be text", param=param)
    value = value.strip()
    if not value and param != "description":
        raise InvalidRequest(f"{param} must not be empty", param=param)
    if len(value) > _TEXT[param]:
        raise InvalidRequest(f"{param} must be at most {_TEXT[param]} characters", param=param)
    one_line = param != "description"
    if (_ONE_LINE_CONTROL if one_line else _CONTROL).search(value):
        raise InvalidRequest(
            f"{param} must be {'one line of text ' if one_line else ''}without control characters", param=param
        )
    return value


def _utc(value: Any, *, param: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidRequest(f"{param} must be a date and time", param=param)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _seats(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= schemas.SEATS_MAX:
        raise InvalidRequest(f"seats must be a whole number from 1 to {schemas.SEATS_MAX}", param="seats")
    return value


def _check_times(event: TrainingEvent) -> None:
    if event.ends_at <= event.starts_at:
        raise InvalidRequest("the event must end after it starts", param="ends_at")
    if event.registration_closes_at is not None and event.registration_closes_at > event.starts_at:
        raise InvalidRequest("registration must close no later than the start", param="registration_closes_at")


def registration_open(event: TrainingEvent, now: datetime | None = None) -> bool:
    now = now or utcnow()
    closes = event.registration_closes_at or event.starts_at
    return event.is_published and now < closes and now < event.starts_at


def _load(session: Session, actor: Actor, event_id: str, *, lock: bool = False) -> TrainingEvent:
    event = None
    if _ID.match(event_id or ""):
        query = select(TrainingEvent).where(TrainingEvent.id == event_id)
        event = session.scalar(query.with_for_update() if lock else query)
    if event is None or not (event.is_published or actor.is_operator):
        raise NotFound(f"no training event {event_id!r}", param="id")
    return event


def _active(session: Session, event_id: str, status: RegistrationStatus) -> list[TrainingRegistration]:
    query = (
        select(TrainingRegistration)
        .where(TrainingRegistration.event_id == event_id, TrainingRegistration.status == status)
        .options(selectinload(TrainingRegistration.user))
        .order_by(TrainingRegistration.created_at, TrainingRegistration.id)
    )
    return list(session.scalars(query))


def _counts(session: Session, event_ids: list[str]) -> dict[tuple[str, str], int]:
    if not event_ids:
        return {}
    query = (
        select(TrainingRegistration.event_id, TrainingRegistration.status, func.count())
        .where(TrainingRegistration.event_id.in_(event_ids))
        .group_by(TrainingRegistration.event_id, TrainingRegistration.status)
    )
    return {(event_id, status): n for event_id, status, n in session.execute(query)}


def _registration(session: Session, registration: TrainingRegistration) -> schemas.EventRegistration:
    position = None
    if registration.status == RegistrationStatus.waitlisted:
        ahead = [r.id for r in _active(session, registration.event_id, RegistrationStatus.waitlisted)]
        position = ahead.index(registration.id) + 1 if registration.id in ahead else None
    user = registration.user
    return schemas.EventRegistration(
        id=registration.id,
        event_id=registration.event_id,
        user=schemas.Attendee(id=user.id, email=user.email, name=user.name),
        status=RegistrationStatus(registration.status),
        waitlist_position=position,
        created_at=registration.created_at,
    )


def _views(session: Session, actor: Actor, events: list[TrainingEvent]) -> list[schemas.TrainingEvent]:
    counts = _counts(session, [e.id for e in events])
    mine: dict[str, TrainingRegistration] = {}
    if actor.user_id is not None and events:
        query = select(TrainingRegistration).where(
            TrainingRegistration.user_id == actor.user_id, TrainingRegistration.event_id.in_([e.id for e in events])
        )
        mine = {r.event_id: r for r in session.scalars(query)}
    now = utcnow()
    views = []
    for event in events:
        registered = counts.get((event.id, RegistrationStatus.registered), 0)
        own = mine.get(event.id)
        views.append(
            schemas.TrainingEvent(
                id=event.id,
                title=event.title,
                description=event.description,
                starts_at=event.starts_at,
                ends_at=event.ends_at,
                location=event.location,
                seats=event.seats,
                registration_closes_at=event.registration_closes_at,
                is_published=event.is_published,
                registered=registered,
                waitlisted=counts.get((event.id, RegistrationStatus.waitlisted), 0),
                seats_left=max(0, event.seats - registered),
                registration_open=registration_open(event, now),
                my_registration=_registration(session, own) if own else None,
            )
        )
    return views


def _mail(session: Session, mailer: Mailer, to: str, subject: str, body: str) -> None:
    mailer.send(session=session, to=to, subject=" ".join(subject.split()), body=body)  # one header line


def _when(event: TrainingEvent) -> str:
    return f"{event.starts_at:%Y-%m-%d %H:%M} to {event.ends_at:%Y-%m-%d %H:%M} UTC, {event.location}"


def _promote(session: Session, mailer: Mailer, event: TrainingEvent) -> list[TrainingRegistration]:
    """Give free seats to the longest-waiting people, in order; tell each of them."""
    free = event.seats - len(_active(session, event.id, RegistrationStatus.registered))
    promoted = _active(session, event.id, RegistrationStatus.waitlisted)[: max(0, free)]
    for registration in promoted:
        registration.status = RegistrationStatus.registered
        _mail(
            session,
            mailer,
            registration.user.email,
            f"A seat for you: {event.title}",
            f"A seat became free and you moved up from the waitlist: you are registered for {event.title}, "
            f"{_when(event)}.\n\nCannot come? Cancel at {mailer.link('/training/' + event.id)} so the next one "
            "gets the seat.",
        )
    session.flush()
    return promoted


def create_event(
    *,
    session: Session,
    actor: Actor,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    seats: int,
    description: str = "",
    location: str = "online",
    registration_closes_at: datetime | None = None,
    is_published: bool = True,
) -> schemas.TrainingEvent:
    if not actor.is_operator:
        raise Forbidden("only operators may plan training events")
    event = TrainingEvent(
        title=_text(title, param="title"),
        description=_text(description, param="description"),
        location=_text(location, param="location"),
        starts_at=_utc(starts_at, param="starts_at"),
        ends_at=_utc(ends_at, param="ends_at"),
        registration_closes_at=(
            _utc(registration_closes_at, param="registration_closes_at") if registration_closes_at else None
        ),
        seats=_seats(seats),
        is_published=bool(is_published),
    )
    _check_times(event)
    session.add(event)
    session.flush()
    return _views(session, actor, [event])[0]


def update_event(
    *, session: Session, mailer: Mailer, actor: Actor, event_id: str, changes: Mapping[str, Any]
) -> schemas.TrainingEvent:
    """Change the fields named in ``changes``. Seats cannot drop below those registered; added seats
    go to the waitlist at once. People registered or waiting are told when the time or place moves."""
    if not actor.is_operator:
        raise Forbidden("only operators may change training events")
    event = _load(session, actor, event_id, lock=True)
    before = _when(event)
    for field, value in changes.items():
        if field not in EDITABLE:
            raise InvalidRequest(f"{field!r} cannot be changed", param=field)
        if field in _TEXT:
            setattr(event, field, _text(value, param=field))
        elif field == "registration_closes_at":
            event.registration_closes_at = _utc(value, param=field) if value is not None else None
        elif field in _TIMES:
            setattr(event, field, _utc(value, param=field))
        elif field == "seats":
            taken = len(_active(session, event.id, RegistrationStatus.registered))
            if _seats(value) < taken:
                raise Conflict(f"{taken} people hold seats; seats cannot drop below that", param="seats")
            event.seats = value
        elif isinstance(value, bool):
            event.is_published = value
        else:
            raise InvalidRequest("is_published must be true or false", param=field)
    _check_times(event)
    session.flush()
    _promote(session, mailer, event)
    if _when(event) != before:
        for status in (RegistrationStatus.registered, RegistrationStatus.waitlisted):
            for registration in _active(session, event.id, status):
                _mail(
                    session,
                    mailer,
                    registration.user.email,
                    f"Changed: {event.title}",
                    f"{event.title} moved.\nWas: {before}\nNow: {_when(event)}\n\nYou are {status.value}.",
                )
    return _views(session, actor, [event])[0]


def _events_where(actor: Actor, *, include_past: bool) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if not actor.is_operator:
        where.append(TrainingEvent.is_published.is_(True))
    if not include_past:
        where.append(TrainingEvent.ends_at >= utcnow())
    return where


def list_events(
    *, session: Session, actor: Actor, include_past: bool = False, limit: int = 100, offset: int = 0
) -> list[schemas.TrainingEvent]:
    """Events by start time: upcoming and running ones, or all with ``include_past``; a page of ``limit``
    (at most 1000) from ``offset``."""
    query = (
        select(TrainingEvent)
        .where(*_events_where(actor, include_past=include_past))
        .order_by(TrainingEvent.starts_at, TrainingEvent.id)
        .limit(max(1, min(limit, 1000)))
        .offset(max(0, offset))
    )
    return _views(session, actor, list(session.scalars(query)))


def count_events(*, session: Session, actor: Actor, include_past: bool = False) -> int:
    """How many events ``list_events`` pages through."""
    where = _events_where(actor, include_past=include_past)
    return session.scalar(select(func.count()).select_from(TrainingEvent).where(*where)) or 0


def get_event(*, session: Session, actor: Actor, event_id: str) -> schemas.TrainingEvent:
    return _views(session, actor, [_load(session, actor, event_id)])[0]


def register(*, session: Session, mailer: Mailer, actor: Actor, event_id: str) -> schemas.EventRegistration:
    """Take a seat, or a place on the waitlist when the seats are gone."""
    event = _load(session, actor, event_id, lock=True)
    user = session.get(User, actor.user_id) if actor.user_id else None
    if user is None:
        raise InvalidRequest("registering needs a user account", param="actor")
    now = utcnow()
    if not event.is_published:
        raise Conflict("this event is not published; publish it before registering", code="registration_closed")
    if now >= event.starts_at:
        raise Conflict("this event has started; registration is closed", code="registration_closed")
    if not registration_open(event, now):
        raise Conflict("the registration deadline has passed", code="registration_closed")
    registration = session.scalar(
        select(TrainingRegistration).where(
            TrainingRegistration.event_id == event.id, TrainingRegistration.user_id == user.id
        )
    )
    if registration is not None and registration.status != RegistrationStatus.cancelled:
        raise Conflict(f"you are {registration.status} already", code="already_registered")
    seats_taken = len(_active(session, event.id, RegistrationStatus.registered))
    queue = len(_active(session, event.id, RegistrationStatus.waitlisted))
    status = (
        RegistrationStatus.registered if seats_taken < event.seats and queue == 0 else RegistrationStatus.waitlisted
    )
    if registration is None:
        registration = TrainingRegistration(event_id=event.id, user=user, status=status, created_at=now)
        session.add(registration)
    else:  # back after cancelling: to the end of the queue
        registration.status, registration.created_at = status, now
    session.flush()
    view = _registration(session, registration)
    if status == RegistrationStatus.registered:
        text = f"You are registered for {event.title}, {_when(event)}."
    else:
        text = (
            f"{event.title} is full; you are number {view.waitlist_position} on the waitlist. "
            "We will write when a seat frees up."
        )
    _mail(session, mailer, user.email, f"{status.value.capitalize()}: {event.title}", text)
    return view


def cancel(
    *, session: Session, mailer: Mailer, actor: Actor, event_id: str, registration_id: str | None = None
) -> schemas.EventRegistration:
    """Cancel the actor's registration (or, for operators, anyone's by id); a freed seat goes to the
    first on the waitlist. Not possible once the event has started."""
    event = _load(session, actor, event_id, lock=True)
    if registration_id is not None and not _ID.match(registration_id):
        raise NotFound("no such registration", param="registration_id")
    query = select(TrainingRegistration).where(TrainingRegistration.event_id == event.id)
    if registration_id is not None:
        query = query.where(TrainingRegistration.id == registration_id)
    if registration_id is None or not actor.is_operator:
        query = query.where(TrainingRegistration.user_id == actor.user_id)
    registration = session.scalar(query) if actor.user_id or registration_id else None
    if registration is None or registration.status == RegistrationStatus.cancelled:
        raise NotFound("no registration of yours for this event" if not actor.is_operator else "no such registration")
    if utcnow() >= event.starts_at:
        raise Conflict("this event has started; registrations can no longer be cancelled", param="id")
    registration.status = RegistrationStatus.cancelled
    session.flush()
    _promote(session, mailer, event)
    return _registration(session, registration)


def list_registrations(*, session: Session, actor: Actor, event_id: str) -> list[schemas.EventRegistration]:
    """Operators: everyone's, seats first, then the waitlist in order, then cancelled. Others: their own."""
    event = _load(session, actor, event_id)
    order = {RegistrationStatus.registered: 0, RegistrationStatus.waitlisted: 1, RegistrationStatus.cancelled: 2}
    query = (
        select(TrainingRegistration)
        .where(TrainingRegistration.event_id == event.id)
        .options(selectinload(TrainingRegistration.user))
        .order_by(TrainingRegistration.created_at, TrainingRegistration.id)
    )
    if not actor.is_operator:
        query = query.where(TrainingRegistration.user_id == actor.user_id)
    rows = sorted(session.scalars(query), key=lambda r: order[RegistrationStatus(r.status)])
    waiting = [r.id for r in _active(session, event.id, RegistrationStatus.waitlisted)]
    return [
        schemas.EventRegistration(
            id=r.id,
            event_id=r.event_id,
            user=schemas.Attendee(id=r.user.id, email=r.user.email, name=r.user.name),
            status=RegistrationStatus(r.status),
            waitlist_position=waiting.index(r.id) + 1 if r.id in waiting else None,
            created_at=r.created_at,
        )
        for r in rows
    ]
