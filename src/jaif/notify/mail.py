"""The e-mails identity sends (verification, password reset, invitation), through notify.service."""

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


def verify_email_body(*, name: str, link: str, hours: float) -> str:
    return (
        f"Hello {name or 'there'},\n\n"
        f"please confirm your e-mail address for the AI Factory portal by opening this link:\n\n{link}\n\n"
        f"The link works for {hours:g} hours. If you did not create an account, ignore this message.\n"
    )


def reset_password_body(*, link: str, hours: float) -> str:
    return (
        "Hello,\n\n"
        f"someone asked to reset the password of your AI Factory account. To choose a new one, open:\n\n{link}\n\n"
        f"The link works once, for {hours:g} hours. If it was not you, ignore this message: "
        "your password stays as it is.\n"
    )


def invitation_body(*, inviter: str, project: str, role: str, link: str, days: float) -> str:
    as_role = "principal investigator" if role == "pi" else "member"
    return (
        "Hello,\n\n"
        f"{inviter} invites you to join the project {project} on the AI Factory portal as {as_role}.\n"
        f"To accept, open this link (it works once, for {days:g} days):\n\n{link}\n\n"
        "You sign in, or create an account, with this e-mail address.\n"
    )
