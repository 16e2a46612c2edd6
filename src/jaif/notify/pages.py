"""The operator's outbox (``/operator/outbox``): the notifications jaif sent by SMTP or wrote to the local
outbox folder, filtered by recipient."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from jaif.identity.deps import PageOperator
from jaif.notify import service as notify
from jaif.web.deps import DB
from jaif.web.display import render

router = APIRouter(include_in_schema=False)


@router.get("/operator/outbox")
def outbox(request: Request, session: DB, actor: PageOperator, to: str = "") -> Response:
    notes = notify.list_notifications(session=session, limit=200, to=to.strip() or None)
    smtp = request.app.state.settings.smtp
    return render(request, "notify/outbox.html", section="operator", notes=notes, to=to, smtp_host=smtp.host,
                  folder=str(request.app.state.settings.outbox_dir))
