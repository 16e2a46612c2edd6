"""The operator's outbox (``/operator/outbox``): the notifications jaif sent by SMTP or wrote to the local
outbox folder, filtered by recipient; and everyone's own notifications (``/notifications``), with the
unread count as a badge in the navigation."""

from __future__ import annotations

from fastapi import APIRouter, Request
from jinja2 import pass_context
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from jaif.access.models import User
from jaif.identity.deps import PageOperator, PageUser
from jaif.notify import service as notify
from jaif.web.deps import DB
from jaif.web.display import render
from jaif.web.session import signed_in_user
from jaif.web.templating import TEMPLATES

router = APIRouter(include_in_schema=False)


@router.get("/operator/outbox")
def outbox(request: Request, session: DB, actor: PageOperator, to: str = "") -> Response:
    notes = notify.list_notifications(session=session, limit=200, to=to.strip() or None)
    smtp = request.app.state.settings.smtp
    return render(request, "notify/outbox.html", section="operator", notes=notes, to=to, smtp_host=smtp.host,
                  folder=str(request.app.state.settings.outbox_dir))


@router.get("/notifications")
def notifications(request: Request, session: DB, actor: PageUser) -> Response:
    """What jaif sent you (decisions, invitations, support replies, finished jobs), newest first; the unread
    ones marked. Reading the page does not mark them read: *Mark all as read* does."""
    confirmed = _confirmed(session, actor.email)
    notes = notify.for_address(session=session, email=actor.email, limit=100) if confirmed else []
    return render(request, "notify/notifications.html", section="notifications", notes=notes, confirmed=confirmed)


def _confirmed(session, email: str) -> bool:
    """Only the confirmed owner of an address reads what was sent to it (an account made for an address
    before its owner signed up must not read their invitations)."""
    verified = session.scalar(select(User.email_verified_at).where(User.email == email))
    return verified is not None


@router.post("/notifications/read")
def read_all(request: Request, session: DB, actor: PageUser) -> Response:
    notify.mark_read(session=session, email=actor.email)
    return RedirectResponse("/notifications", status_code=303)


@pass_context
def _unread(context) -> int:
    """The navigation's badge: the signed-in person's unread notifications (0 for visitors)."""
    request = context["request"]
    user = signed_in_user(request)
    session = getattr(request.state, "db", None)  # the page's own transaction (web/deps.py)
    if not user or not user.get("email") or session is None:
        return 0
    if not _confirmed(session, user["email"]):
        return 0
    return notify.unread_count(session=session, email=user["email"])


TEMPLATES.env.globals["unread_notifications"] = _unread  # base.html's navigation
