"""The support desk: users ask for expert help, operators answer.

Who sees a request: its requester, the members of its project (if it names one) and operators. For
anyone else it does not exist: every lookup answers NotFound, never Forbidden, so ids leak nothing.
Operators may add internal notes, which no service here ever returns to a non-operator.

Status: open -> in_progress -> waiting_for_user -> resolved -> closed, set freely by operators. The
requester may close a request and reopen a resolved or closed one. A user's reply to a request that
waits for them (or was resolved) puts it back in the operators' queue. Assigning an open request
marks it in progress.
"""

from __future__ import annotations

import enum
import re
from typing import TypeVar

from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.orm import Session, selectinload

from jaif.access.models import Project, ProjectMember, User
from jaif.access.schemas import Actor
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jaif.notify.mail import Mailer
from jaif.support.models import SupportCategory, SupportReply, SupportRequest, SupportStatus
from jaif.support.schemas import (
    BODY_MAX,
    SUBJECT_MAX,
    SupportPerson,
    SupportReplyView,
    SupportRequestDetail,
    SupportRequestSummary,
)

E = TypeVar("E", bound=enum.Enum)
_ID = re.compile(r"^[0-9a-f]{32}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # line breaks and tabs are fine in a message
_ONE_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BACK_TO_QUEUE = (SupportStatus.waiting_for_user, SupportStatus.resolved)


def _text(value: str, *, param: str, max_len: int, one_line: bool = False) -> str:
    value = value.strip()
    if not value:
        raise InvalidRequest(f"{param} must not be empty", param=param)
    if len(value) > max_len:
        raise InvalidRequest(f"{param} must be at most {max_len} characters", param=param)
    if (_ONE_LINE_CONTROL if one_line else _CONTROL).search(value):
        line = "one line of text " if one_line else ""
        raise InvalidRequest(f"{param} must be {line}without control characters", param=param)
    return value


def _choice(enum_type: type[E], value: str, *, param: str) -> E:
    try:
        return enum_type(value)
    except ValueError:
        raise InvalidRequest(f"{param} must be one of {', '.join(enum_type.__members__)}", param=param) from None


def _member_projects(actor: Actor):
    return select(ProjectMember.project_id).where(ProjectMember.user_id == actor.user_id)


def _visible(actor: Actor) -> ColumnElement[bool]:
    if actor.is_operator:
        return true()
    if actor.user_id is None:
        return false()
    return or_(SupportRequest.requester_id == actor.user_id, SupportRequest.project_id.in_(_member_projects(actor)))


def _load(session: Session, actor: Actor, request_id: str, *, lock: bool = False) -> SupportRequest:
    if not _ID.match(request_id or ""):
        raise NotFound(f"no support request {request_id!r}", param="id")
    query = (
        select(SupportRequest)
        .where(SupportRequest.id == request_id, _visible(actor))
        .options(selectinload(SupportRequest.replies).selectinload(SupportReply.author))
    )
    if lock:
        query = query.with_for_update()
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"no support request {request_id!r}", param="id")
    return found


def _person(user: User, viewer: Actor | None = None) -> SupportPerson:
    """``viewer`` None: an operator's list. Others than operators see only the name of other people."""
    if viewer is None or viewer.is_operator or viewer.user_id == user.id:
        return SupportPerson(id=user.id, email=user.email, name=user.name)
    return SupportPerson(name=user.name or ("Support team" if user.role == "operator" else "A user"))


def _replies_for(actor: Actor, request: SupportRequest) -> list[SupportReply]:
    return [r for r in request.replies if actor.is_operator or not r.internal]


def _summary(actor: Actor, request: SupportRequest) -> dict:
    return {
        "id": request.id,
        "category": request.category,
        "subject": request.subject,
        "status": request.status,
        "requester": _person(request.requester, actor),
        "project_id": request.project_id,
        "project_name": request.project.name if request.project else None,
        "assignee": _person(request.assignee, actor) if request.assignee else None,
        "replies": len(_replies_for(actor, request)),
        "created_at": request.created_at,
        "updated_at": request.updated_at,
    }


def allowed_statuses(actor: Actor, request: SupportRequest) -> list[SupportStatus]:
    current = SupportStatus(request.status)
    if actor.is_operator:
        return [s for s in SupportStatus if s != current]
    if actor.user_id != request.requester_id:
        return []
    allowed = []
    if current != SupportStatus.closed:
        allowed.append(SupportStatus.closed)
    if current in (SupportStatus.resolved, SupportStatus.closed):
        allowed.append(SupportStatus.open)
    return allowed


def _detail(actor: Actor, request: SupportRequest) -> SupportRequestDetail:
    thread = [
        SupportReplyView(
            id=r.id,
            author=_person(r.author, actor),
            from_operator=r.author.role == "operator",
            body=r.body,
            internal=r.internal,
            created_at=r.created_at,
        )
        for r in _replies_for(actor, request)
    ]
    return SupportRequestDetail(
        **_summary(actor, request),
        body=request.body,
        thread=thread,
        can_reply=actor.user_id is not None and (actor.is_operator or request.status != SupportStatus.closed),
        allowed_statuses=allowed_statuses(actor, request),
    )


def _tag(request: SupportRequest) -> str:
    return f"[support {request.id[:8]}] {request.subject}"


def _link(mailer: Mailer, request: SupportRequest) -> str:
    return mailer.link(f"/support/{request.id}")


def _mail(session: Session, mailer: Mailer, to: list[str], subject: str, body: str) -> None:
    for address in dict.fromkeys(to):  # each once, in order
        mailer.send(session=session, to=address, subject=" ".join(subject.split()), body=body)


def _operator_emails(session: Session, *, besides: str | None = None) -> list[str]:
    query = select(User.email).where(User.role == "operator", User.is_active.is_(True)).order_by(User.email)
    return [e for e in session.scalars(query) if e != besides]


def _user(session: Session, actor: Actor) -> User:
    if actor.user_id is None:
        raise InvalidRequest("this needs a user account; the command line acts for no one", param="actor")
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotFound("your account no longer exists")
    return user


def create_request(
    *,
    session: Session,
    mailer: Mailer,
    actor: Actor,
    category: str,
    subject: str,
    body: str,
    project_id: str | None = None,
) -> SupportRequestDetail:
    user = _user(session, actor)
    kind = _choice(SupportCategory, category, param="category")
    subject = _text(subject, param="subject", max_len=SUBJECT_MAX, one_line=True)
    body = _text(body, param="body", max_len=BODY_MAX)
    project = None
    if project_id:
        project = session.get(Project, project_id) if _ID.match(project_id) else None
        member = project is not None and session.scalar(
            select(ProjectMember.id).where(ProjectMember.project_id == project.id, ProjectMember.user_id == user.id)
        )
        if project is None or not (member or actor.is_operator):
            raise InvalidRequest("no such project among yours", param="project_id")
    request = SupportRequest(
        requester_id=user.id, project_id=project.id if project else None, category=kind, subject=subject, body=body
    )
    session.add(request)
    session.flush()
    where = f" (project {project.name})" if project else ""
    _mail(
        session,
        mailer,
        _operator_emails(session, besides=user.email),
        f"New {_tag(request)}",
        f"{user.email}{where} asks for help with {kind.value}:\n\n{body}\n\nAnswer at {_link(mailer, request)}",
    )
    return _detail(actor, request)


def _listed(
    actor: Actor, *, status: str | None, category: str | None, assignee_id: str | None, project_id: str | None
) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a list of requests, shared by the list and its count."""
    where = [_visible(actor)]
    if status:
        where.append(SupportRequest.status == _choice(SupportStatus, status, param="status"))
    if category:
        where.append(SupportRequest.category == _choice(SupportCategory, category, param="category"))
    for value, param in ((assignee_id, "assignee_id"), (project_id, "project_id")):
        if value and value != "none" and not _ID.match(value):
            raise InvalidRequest(f"{param} must be an id as the API shows them", param=param)
    if assignee_id == "none":
        where.append(SupportRequest.assignee_id.is_(None))
    elif assignee_id:
        where.append(SupportRequest.assignee_id == assignee_id)
    if project_id:
        where.append(SupportRequest.project_id == project_id)
    return where


def list_requests(
    *,
    session: Session,
    actor: Actor,
    status: str | None = None,
    category: str | None = None,
    assignee_id: str | None = None,
    project_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[SupportRequestSummary]:
    """What the actor may see, newest activity first. ``assignee_id="none"`` lists unassigned ones."""
    where = _listed(actor, status=status, category=category, assignee_id=assignee_id, project_id=project_id)
    query = (
        select(SupportRequest)
        .where(*where)
        .options(
            selectinload(SupportRequest.replies),
            selectinload(SupportRequest.requester),
            selectinload(SupportRequest.assignee),
            selectinload(SupportRequest.project),
        )
        .order_by(SupportRequest.updated_at.desc(), SupportRequest.id)
        .limit(max(1, min(limit, 1000)))
        .offset(max(0, offset))
    )
    return [SupportRequestSummary(**_summary(actor, r)) for r in session.scalars(query)]


def count_requests(
    *,
    session: Session,
    actor: Actor,
    status: str | None = None,
    category: str | None = None,
    assignee_id: str | None = None,
    project_id: str | None = None,
) -> int:
    """How many requests ``list_requests`` pages through with the same filters."""
    where = _listed(actor, status=status, category=category, assignee_id=assignee_id, project_id=project_id)
    return session.scalar(select(func.count()).select_from(SupportRequest).where(*where)) or 0


def get_request(*, session: Session, actor: Actor, request_id: str) -> SupportRequestDetail:
    return _detail(actor, _load(session, actor, request_id))


def add_reply(
    *, session: Session, mailer: Mailer, actor: Actor, request_id: str, body: str, internal: bool = False
) -> SupportRequestDetail:
    request = _load(session, actor, request_id, lock=True)
    author = _user(session, actor)
    body = _text(body, param="body", max_len=BODY_MAX)
    if internal and not actor.is_operator:
        raise Forbidden("only operators may write internal notes", param="internal")
    if request.status == SupportStatus.closed and not actor.is_operator:
        raise Conflict("this request is closed; reopen it to reply", param="status")
    request.replies.append(SupportReply(author=author, body=body, internal=internal))
    if not actor.is_operator and request.status in _BACK_TO_QUEUE:
        request.status = SupportStatus.in_progress if request.assignee_id else SupportStatus.open
    request.updated_at = utcnow()
    session.flush()
    if internal:
        to = [request.assignee.email] if request.assignee and request.assignee_id != author.id else []
        _mail(session, mailer, to, f"Internal note on {_tag(request)}", f"{author.email} noted:\n\n{body}")
    elif actor.is_operator:
        _mail(
            session,
            mailer,
            [request.requester.email] if request.requester_id != author.id else [],
            f"Reply to {_tag(request)}",
            f"{author.name or author.email} of the support team replied:\n\n{body}\n\nSee {_link(mailer, request)}",
        )
    else:
        to = [request.assignee.email] if request.assignee else _operator_emails(session)
        _mail(session, mailer, to, f"Reply to {_tag(request)}", f"{author.email} replied:\n\n{body}")
    return _detail(actor, request)


def set_status(*, session: Session, mailer: Mailer, actor: Actor, request_id: str, status: str) -> SupportRequestDetail:
    request = _load(session, actor, request_id, lock=True)
    new = _choice(SupportStatus, status, param="status")
    if new == request.status:
        return _detail(actor, request)
    if new not in allowed_statuses(actor, request):
        if actor.is_operator or actor.user_id == request.requester_id:
            raise Conflict(f"a {request.status} request cannot be set to {new.value}", param="status")
        raise Forbidden("only operators and the requester may change the status", param="status")
    old, request.status = request.status, new
    request.updated_at = utcnow()
    session.flush()
    if actor.is_operator and actor.user_id != request.requester_id:
        _mail(
            session,
            mailer,
            [request.requester.email],
            f"{_tag(request)}: now {new.value}",
            f"Your support request went from {old} to {new.value}.\n\nSee {_link(mailer, request)}",
        )
    return _detail(actor, request)


def assign(
    *, session: Session, mailer: Mailer, actor: Actor, request_id: str, assignee_id: str | None
) -> SupportRequestDetail:
    request = _load(session, actor, request_id, lock=True)
    if not actor.is_operator:
        raise Forbidden("only operators may assign support requests", param="assignee_id")
    assignee = None
    if assignee_id:
        assignee = session.get(User, assignee_id) if _ID.match(assignee_id) else None
        if assignee is None or assignee.role != "operator" or not assignee.is_active:
            raise InvalidRequest("the assignee must be an active operator", param="assignee_id")
    request.assignee = assignee
    if assignee and request.status == SupportStatus.open:
        request.status = SupportStatus.in_progress
    request.updated_at = utcnow()
    session.flush()
    if assignee and assignee.id != actor.user_id:
        _mail(
            session,
            mailer,
            [assignee.email],
            f"Assigned to you: {_tag(request)}",
            f"{request.requester.email} asks:\n\n{request.body}\n\nAnswer at {_link(mailer, request)}",
        )
    return _detail(actor, request)


def list_operators(*, session: Session) -> list[SupportPerson]:
    """Who requests can be assigned to."""
    query = select(User).where(User.role == "operator", User.is_active.is_(True)).order_by(User.email)
    return [_person(u) for u in session.scalars(query)]


def project_choices(*, session: Session, actor: Actor) -> list[tuple[str, str]]:
    """(id, name) of the projects the actor may file a request for: those they are a member of."""
    if actor.user_id is None:
        return []
    query = select(Project.id, Project.name).where(Project.id.in_(_member_projects(actor))).order_by(Project.name)
    return [(pid, name) for pid, name in session.execute(query)]
