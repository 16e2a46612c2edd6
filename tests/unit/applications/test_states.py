"""The application state machine: every allowed transition, and every other one refused."""

from __future__ import annotations

import itertools

import pytest

from jaif.applications.models import ApplicationState as S
from jaif.applications.states import TRANSITIONS, refusal
from jaif.calls.models import ReviewMode as M

ALLOWED = {
    (S.draft, S.submitted): {M.automatic, M.technical, M.peer},
    (S.draft, S.withdrawn): {M.automatic, M.technical, M.peer},
    (S.submitted, S.technical_review): {M.automatic, M.technical, M.peer},
    (S.submitted, S.accepted): {M.automatic},
    (S.submitted, S.rejected): {M.automatic, M.technical, M.peer},
    (S.submitted, S.withdrawn): {M.automatic, M.technical, M.peer},
    (S.technical_review, S.peer_review): {M.automatic, M.technical, M.peer},
    (S.technical_review, S.accepted): {M.automatic, M.technical},
    (S.technical_review, S.rejected): {M.automatic, M.technical, M.peer},
    (S.technical_review, S.withdrawn): {M.automatic, M.technical, M.peer},
    (S.peer_review, S.accepted): {M.automatic, M.technical, M.peer},
    (S.peer_review, S.rejected): {M.automatic, M.technical, M.peer},
    (S.peer_review, S.withdrawn): {M.automatic, M.technical, M.peer},
    (S.accepted, S.allocated): {M.automatic, M.technical, M.peer},
}


@pytest.mark.parametrize(("current", "target", "mode"), list(itertools.product(S, S, M)))
def test_transition(current, target, mode):
    why = refusal(current, target, mode)
    if mode in ALLOWED.get((current, target), set()):
        assert why is None
    else:
        assert why, f"{current} -> {target} ({mode}) must be refused"


def test_final_states_are_final():
    for final in (S.rejected, S.allocated, S.withdrawn):
        assert TRANSITIONS[final] == frozenset()


def test_reasons_say_what_to_do():
    assert refusal(S.submitted, S.accepted, M.technical) == (
        "this call reviews applications: start the technical review before accepting"
    )
    assert refusal(S.technical_review, S.accepted, M.peer) == (
        "this call needs a peer review before an application is accepted"
    )
    assert refusal(S.accepted, S.withdrawn, M.technical) == "an application that is accepted cannot become withdrawn"
