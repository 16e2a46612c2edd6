"""Send e-mail: through SMTP where JAIF_SMTP__HOST is set, else into a local outbox folder.

Every message is also recorded in the notifications table, which the operator console shows, so the
embedded default loses nothing and a failed SMTP send is visible with its error. The recorded copy keeps
no live one-time link: the caller names the secrets to withhold (the tokens of verification, reset and
invitation links), and they are replaced by ``[withheld]``. The outbox files are the mail itself, with
working links, as an SMTP server would hold it: the folder is mode 0700 and each file 0600, readable by
the server's account only.
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from jaif.config import SmtpSettings
from jaif.db.base import utcnow
from jaif.notify.models import Notification

log = logging.getLogger(__name__)


WITHHELD = "[withheld]"


def withheld(body: str, secrets: Sequence[str]) -> str:
    """``body`` with each of ``secrets`` replaced by ``[withheld]``."""
    for secret in secrets:
        if secret:
            body = body.replace(secret, WITHHELD)
    return body


def send(
    *,
    session: Session,
    smtp: SmtpSettings,
    outbox: Path,
    to: str,
    subject: str,
    body: str,
    withhold: Sequence[str] = (),
) -> Notification:
    note = Notification(
        to_email=to, subject=subject, body=withheld(body, withhold), transport="smtp" if smtp.host else "outbox"
    )
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
            _write_outbox(outbox / f"{note.created_at:%Y%m%dT%H%M%S}-{note.id}.eml", bytes(message))
        note.sent_at = utcnow()
    except (OSError, smtplib.SMTPException) as exc:
        # The action that sent it (a sign-up, a decision) stands; the operator sees the failure.
        note.error = f"{type(exc).__name__}: {exc}"
        log.error("could not send e-mail %s to %s: %s", note.id, to, note.error)
    return note


def _write_outbox(path: Path, data: bytes) -> None:
    """One message into the outbox folder (0700), as a file only the server's account reads (0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.stat().st_mode & 0o077:
        path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def list_notifications(*, session: Session, limit: int = 200, to: str | None = None) -> list[Notification]:
    query = select(Notification).order_by(Notification.created_at.desc()).limit(limit)
    if to is not None:
        query = query.where(Notification.to_email == to)
    return list(session.scalars(query))


# -- the portal's notifications: what was sent to a person's address, newest first --------------------


def post(*, session: Session, to: str, subject: str, body: str) -> Notification:
    """A notice shown in the portal only (not mailed): for what is worth a look, not an e-mail."""
    note = Notification(to_email=to, subject=subject, body=body, transport="portal", sent_at=utcnow())
    session.add(note)
    session.flush()
    return note


def _mine(email: str):
    return Notification.to_email == email


def for_address(*, session: Session, email: str, limit: int = 50) -> list[Notification]:
    query = select(Notification).where(_mine(email)).order_by(Notification.created_at.desc()).limit(limit)
    return list(session.scalars(query))


def unread_count(*, session: Session, email: str) -> int:
    query = select(func.count()).select_from(Notification).where(_mine(email), Notification.read_at.is_(None))
    return int(session.scalar(query) or 0)


def mark_read(*, session: Session, email: str) -> int:
    """Every notification to ``email`` read now; returns how many were unread."""
    done = session.execute(update(Notification).where(_mine(email), Notification.read_at.is_(None))
                           .values(read_at=utcnow()))
    return int(getattr(done, "rowcount", 0) or 0)
