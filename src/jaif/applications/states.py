"""The life of an application, and the log of it.

    draft ──> submitted ──> technical_review ──> peer_review ──> accepted ──> allocated
      │           │  │               │   │                │  └──> rejected
      │           │  │               │   └──> accepted | rejected
      │           │  └──> accepted (automatic review only) | rejected
      └───────────┴─────────────────┴──────────────────────┴──> withdrawn (by the applicant, before a decision)

Calls with peer review accept only from peer_review. Every transition is one ApplicationEvent: from,
to, who (None: jaif itself, e.g. the automatic review or the CLI) and when. Anything else is a Conflict.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from jaif.applications.models import Application, ApplicationEvent, ApplicationState
from jaif.calls.models import ReviewMode
from jaif.db.base import utcnow
from jaif.errors import Conflict

S = ApplicationState

TRANSITIONS: dict[str, frozenset[str]] = {
    S.draft: frozenset({S.submitted, S.withdrawn}),
    S.submitted: frozenset({S.technical_review, S.accepted, S.rejected, S.withdrawn}),
    S.technical_review: frozenset({S.peer_review, S.accepted, S.rejected, S.withdrawn}),
    S.peer_review: frozenset({S.accepted, S.rejected, S.withdrawn}),
    S.accepted: frozenset({S.allocated}),
    S.rejected: frozenset(),
    S.allocated: frozenset(),
    S.withdrawn: frozenset(),
}

UNDER_REVIEW = frozenset({S.submitted, S.technical_review, S.peer_review})
DECIDED = frozenset({S.accepted, S.rejected, S.allocated})

_LABEL: dict[str, str] = {
    S.draft: "a draft",
    S.submitted: "submitted",
    S.technical_review: "in technical review",
    S.peer_review: "in peer review",
    S.accepted: "accepted",
    S.rejected: "rejected",
    S.allocated: "allocated",
    S.withdrawn: "withdrawn",
}


def label(state: str) -> str:
    return _LABEL.get(state, state)


def refusal(current: str, target: str, review_mode: str) -> str | None:
    """Why ``current -> target`` is not allowed for a call with ``review_mode``; None if it is."""
    if target not in TRANSITIONS.get(current, frozenset()):
        return f"an application that is {label(current)} cannot become {label(target)}"
    if current == S.submitted and target == S.accepted and review_mode != ReviewMode.automatic:
        return "this call reviews applications: start the technical review before accepting"
    if target == S.accepted and current == S.technical_review and review_mode == ReviewMode.peer:
        return "this call needs a peer review before an application is accepted"
    return None


def move(session: Session, application: Application, target: str, *, actor_id: str | None, note: str = "") -> None:
    """Move ``application`` to ``target``, or raise Conflict; records the transition."""
    why = refusal(application.state, target, application.call.review_mode)
    if why is not None:
        raise Conflict(why, param="state")
    now = utcnow()
    application.events.append(
        ApplicationEvent(from_state=application.state, to_state=target, actor_id=actor_id, note=note, created_at=now)
    )
    application.state = target
    if target == S.submitted:
        application.submitted_at = now
    elif target in (S.accepted, S.rejected):
        application.decided_at = now
    elif target == S.allocated:
        application.allocated_at = now
    session.flush()


def record_created(session: Session, application: Application, *, actor_id: str | None) -> None:
    application.events.append(ApplicationEvent(from_state=None, to_state=S.draft, actor_id=actor_id))
    session.flush()


def note(session: Session, application: Application, text: str) -> None:
    """Record something that happened without a change of state (e.g. why it was not accepted automatically)."""
    state = application.state
    application.events.append(ApplicationEvent(from_state=state, to_state=state, actor_id=None, note=text))
    session.flush()
