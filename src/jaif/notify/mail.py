"""The mailer every concept sends e-mail with: where mail goes and what links in it point at.

Concepts compose their own messages (identity/emails.py, applications/emails.py, the notices of
allocations, support and training) and hand them to ``Mailer.send``, which records and delivers them
through notify.service (SMTP, or the outbox folder in the embedded default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from jaif.config import SmtpSettings
from jaif.notify import service as notify
from jaif.notify.models import Notification


@dataclass(frozen=True, slots=True)
class Mailer:
    """Where mail goes and the address links in it point at (the public URL, without a trailing /)."""

    smtp: SmtpSettings
    outbox: Path
    base_url: str

    def link(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def send(
        self, *, session: Session, to: str, subject: str, body: str, withhold: Sequence[str] = ()
    ) -> Notification:
        """Send ``body``; the copy kept in the notifications table has each secret of ``withhold`` (the
        tokens of one-time links) replaced, so the operator sees what was sent but no live link."""
        return notify.send(
            session=session, smtp=self.smtp, outbox=self.outbox, to=to, subject=subject, body=body, withhold=withhold
        )
