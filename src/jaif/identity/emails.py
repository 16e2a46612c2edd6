"""The e-mails identity sends: e-mail verification, password reset, project invitation.

Only their wording: the links and the sending are the caller's (identity.service, identity.team),
through notify.mail.Mailer.
"""

from __future__ import annotations


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
