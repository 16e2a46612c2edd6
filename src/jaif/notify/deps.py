"""The FastAPI dependency for sending mail: ``MailerDep``, the mailer of this request, with links to the
public URL (or the served address; never the request's Host header, web/deps.py's ``public_base_url``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jaif.config import Settings
from jaif.notify.mail import Mailer
from jaif.web.deps import public_base_url


def mailer(request: Request) -> Mailer:
    s: Settings = request.app.state.settings
    return Mailer(smtp=s.smtp, outbox=s.outbox_dir, base_url=public_base_url(request))


MailerDep = Annotated[Mailer, Depends(mailer)]
