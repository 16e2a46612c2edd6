"""Who may set which status, decided without a database."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from jaif.access.schemas import Actor
from jaif.support.models import SupportStatus
from jaif.support.service import allowed_statuses

REQUESTER = Actor(user_id="a" * 32, email="a@example.org", role="user")
MEMBER = Actor(user_id="b" * 32, email="b@example.org", role="user")
OPERATOR = Actor(user_id="c" * 32, email="c@example.org", role="operator")


def request(status: str) -> SimpleNamespace:
    return SimpleNamespace(status=status, requester_id=REQUESTER.user_id)


@pytest.mark.parametrize(
    ("status", "allowed"),
    [
        ("open", ["closed"]),
        ("in_progress", ["closed"]),
        ("waiting_for_user", ["closed"]),
        ("resolved", ["closed", "open"]),
        ("closed", ["open"]),
    ],
)
def test_the_requester_closes_and_reopens(status, allowed):
    assert allowed_statuses(REQUESTER, request(status)) == allowed


def test_other_members_set_nothing_and_operators_anything_else():
    for status in SupportStatus:
        assert allowed_statuses(MEMBER, request(status)) == []
        assert set(allowed_statuses(OPERATOR, request(status))) == set(SupportStatus) - {status}
