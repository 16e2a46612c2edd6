"""The e-mails of the application flow: submission, reviewer assignment, decision, allocation.

Sent with jaif.notify (SMTP, or the outbox folder in the embedded default); never with reviewer names.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from jaif.allocations.models import Allocation
from jaif.allocations.service import describe
from jaif.applications.models import Application, Review
from jaif.notify.mail import Mailer


def _send(session: Session, mailer: Mailer | None, to: str, subject: str, body: str) -> None:
    if mailer is None:  # no mail (tests of the domain rules, scripts that ask for none)
        return
    mailer.send(session=session, to=to, subject=subject, body=body)


def _link(mailer: Mailer | None, application: Application) -> str:
    return mailer.link(f"/applications/{application.id}") if mailer is not None else ""


def _ref(application: Application) -> str:
    return f"'{application.title}' ({application.call.name}, {application.id[:8]})"


def review_declined(session: Session, mailer: Mailer | None, application: Application, *, reviewer: str,
                    stage: str, conflict: bool, reason: str, operators: list[str]) -> None:
    """To the operators: a reviewer declined, why, and where to assign someone else."""
    why = "declares a conflict of interest" if conflict else "declines"
    link = mailer.link(f"/operator/applications/{application.id}") if mailer is not None else ""
    body = (f"{reviewer} {why} for the {stage} review of {_ref(application)}:\n\n{reason}\n\n"
            f"Assign another reviewer at {link}\n")
    for operator in operators:
        _send(session, mailer, operator, f"Review declined: {application.title}", body)


def submitted(session: Session, mailer: Mailer | None, application: Application) -> None:
    body = (
        f"Your application {_ref(application)} was submitted. The call's target time to access is "
        f"{application.call.target_days_to_access} working days.\n\nFollow it at {_link(mailer, application)}\n"
    )
    _send(session, mailer, application.applicant.email, f"Application received: {application.title}", body)


def reviewer_assigned(session: Session, mailer: Mailer | None, review: Review) -> None:
    application = review.application
    body = (
        f"You were asked for the {review.stage} review of the application {_ref(application)}.\n\n"
        f"Read it and give your score at {_link(mailer, application)}\n"
    )
    _send(session, mailer, review.reviewer.email, f"Please review: {application.title}", body)


def decided(session: Session, mailer: Mailer | None, application: Application, reviews: list[Review]) -> None:
    """The decision with the reviewers' scores and comments, numbered, without their names."""
    verdict = "accepted" if application.state != "rejected" else "not accepted"
    lines = [f"Your application {_ref(application)} was {verdict}."]
    if application.decision_comment:
        lines += ["", "The decision:", application.decision_comment]
    commented = [r for r in reviews if r.submitted_at is not None]
    for number, review in enumerate(commented, 1):
        lines += ["", f"Reviewer {number} ({review.stage} review, score {review.score}/5):", review.comment]
    lines += ["", f"Details: {_link(mailer, application)}"]
    subject = f"Decision on your application: {application.title}"
    _send(session, mailer, application.applicant.email, subject, "\n".join(lines) + "\n")


def allocated(
    session: Session,
    mailer: Mailer | None,
    application: Application,
    allocations: list[Allocation],
    missing: list[str],
    *,
    invited: bool = False,
) -> None:
    project = application.project
    lines = [f"Your application {_ref(application)} is allocated to project {project.name if project else '?'}:"]
    lines += [f"- {describe(a)}" for a in allocations]
    if missing and invited:
        lines += ["", "Team members invited by e-mail to join the project: " + ", ".join(missing)]
    elif missing:
        lines += ["", "Team members without an account yet (invite them from the project page): " + ", ".join(missing)]
    lines += ["", "Create an API key of the project in the portal to use the inference gateway."]
    subject = f"Access granted: {application.title}"
    _send(session, mailer, application.applicant.email, subject, "\n".join(lines) + "\n")
