"""Send e-mail: through SMTP where JAIF_SMTP__HOST is set, else into a local outbox folder.

Every message is also recorded in the notifications table, which the operator console shows, so the
embedded default loses nothing and a failed SMTP send is visible with its error.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from jaif.config import SmtpSettings
from jaif.db.base import utcnow
from jaif.notify.models import Notification

log = logging.getLogger(__name__)


def send(*, session: Session, smtp: SmtpSettings, outbox: Path, to: str, subject: str, body: str) -> Notification:
    note = Notification(to_email=to, subject=subject, body=body, transport="smtp" if smtp.host else "outbox")
    session.add(note)
    session.flush()
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{note.id}@jaif>"
    message.set_content(body)
    try:
        if smtp.host:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
                if smtp.starttls:
                    client.starttls()
                if smtp.username:
                    client.login(smtp.username, smtp.password.get_secret_value() if smtp.password else "")
                client.send_message(message)
        else:
            outbox.mkdir(parents=True, exist_ok=True)
            (outbox / f"{note.created_at:%Y%m%dT%H%M%S}-{note.id}.eml").write_bytes(bytes(message))
        note.sent_at = utcnow()
    except (OSError, smtplib.SMTPException) as exc:
        # The action that sent it (a sign-up, a decision) stands; the operator sees the failure.
        note.error = f"{type(exc).__name__}: {exc}"
        log.error("could not send e-mail %s to %s: %s", note.id, to, note.error)
    return note


def list_notifications(*, session: Session, limit: int = 200, to: str | None = None) -> list[Notification]:
    query = select(Notification).order_by(Notification.created_at.desc()).limit(limit)
    if to is not None:
        query = query.where(Notification.to_email == to)
    return list(session.scalars(query))
