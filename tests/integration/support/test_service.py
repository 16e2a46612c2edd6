"""The support desk's rules against a real database (SQLite; PostgreSQL where configured).

Isolation first: a user never sees, nor learns the existence of, a request that is neither theirs nor
one of their projects'. Then internal notes, status changes, assignment and the e-mails.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from jaif.access.models import ProjectMember
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jaif.support import service


def ask(session, mailer, actor, *, project=None, subject="Cannot start my job", category="porting"):
    return service.create_request(
        session=session,
        mailer=mailer,
        actor=actor,
        category=category,
        subject=subject,
        body="sbatch says: invalid partition",
        project_id=project.id if project else None,
    )


def ids(requests) -> set[str]:
    return {r.id for r in requests}


# --- isolation ---------------------------------------------------------------------------------------


def test_a_user_does_not_see_another_users_personal_request(session, mailer, world):
    alice, bob = world.user("alice"), world.user("bob")
    mine = ask(session, mailer, alice)
    assert ids(service.list_requests(session=session, actor=alice)) == {mine.id}
    assert service.list_requests(session=session, actor=bob) == []
    with pytest.raises(NotFound):
        service.get_request(session=session, actor=bob, request_id=mine.id)


def test_a_user_never_sees_another_projects_requests(session, mailer, world):
    alice, bob = world.user("alice"), world.user("bob")
    lab_a, lab_b = world.project(alice), world.project(bob)
    theirs = ask(session, mailer, bob, project=lab_b)
    ask(session, mailer, alice, project=lab_a)
    assert theirs.id not in ids(service.list_requests(session=session, actor=alice))
    # Not even by asking for that project's requests by its id.
    assert service.list_requests(session=session, actor=alice, project_id=lab_b.id) == []
    with pytest.raises(NotFound):
        service.get_request(session=session, actor=alice, request_id=theirs.id)


def test_members_of_a_project_see_each_others_requests_of_that_project(session, mailer, world):
    alice, bob = world.user("alice"), world.user("bob")
    lab = world.project(alice, bob)
    shared = ask(session, mailer, alice, project=lab)
    personal = ask(session, mailer, alice)
    assert ids(service.list_requests(session=session, actor=bob)) == {shared.id}
    seen = service.get_request(session=session, actor=bob, request_id=shared.id).requester
    assert seen.name == "Alice" and seen.id is None  # another user's internal id is not shown
    with pytest.raises(NotFound):
        service.get_request(session=session, actor=bob, request_id=personal.id)


def test_leaving_a_project_ends_seeing_its_requests_but_not_ones_own(session, mailer, world):
    alice, bob = world.user("alice"), world.user("bob")
    lab = world.project(alice, bob)
    alices = ask(session, mailer, alice, project=lab)
    bobs = ask(session, mailer, bob, project=lab)
    session.execute(delete(ProjectMember).where(ProjectMember.user_id == bob.user_id))
    assert ids(service.list_requests(session=session, actor=bob)) == {bobs.id}
    with pytest.raises(NotFound):
        service.get_request(session=session, actor=bob, request_id=alices.id)


def test_acting_on_an_invisible_request_is_not_found_not_forbidden(session, mailer, world):
    alice, mallory = world.user("alice"), world.user("mallory")
    request = ask(session, mailer, alice, project=world.project(alice))
    attempts = [
        lambda: service.add_reply(session=session, mailer=mailer, actor=mallory, request_id=request.id, body="hi"),
        lambda: service.set_status(
            session=session, mailer=mailer, actor=mallory, request_id=request.id, status="closed"
        ),
        lambda: service.assign(session=session, mailer=mailer, actor=mallory, request_id=request.id, assignee_id=None),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            attempt()
    assert service.get_request(session=session, actor=alice, request_id=request.id).thread == []


def test_a_request_cannot_name_a_project_the_user_is_not_a_member_of(session, mailer, world):
    alice, bob = world.user("alice"), world.user("bob")
    with pytest.raises(InvalidRequest) as refused:
        ask(session, mailer, alice, project=world.project(bob))
    assert refused.value.param == "project_id"


def test_operators_see_every_request(session, mailer, world):
    alice, bob, op = world.user("alice"), world.user("bob"), world.operator()
    made = {ask(session, mailer, alice).id, ask(session, mailer, bob, project=world.project(bob)).id}
    assert made <= ids(service.list_requests(session=session, actor=op))


def test_unknown_and_malformed_ids_are_not_found(session, world):
    alice = world.user("alice")
    for bad in ("0" * 32, "nope", "a\x00b", ""):
        with pytest.raises(NotFound):
            service.get_request(session=session, actor=alice, request_id=bad)


# --- internal notes ----------------------------------------------------------------------------------


def test_internal_notes_are_hidden_from_the_requester_and_project_members(session, mailer, world):
    alice, bob, op = world.user("alice"), world.user("bob"), world.operator()
    request = ask(session, mailer, alice, project=world.project(alice, bob))
    service.add_reply(session=session, mailer=mailer, actor=op, request_id=request.id, body="We are on it.")
    after_note = service.add_reply(
        session=session, mailer=mailer, actor=op, request_id=request.id, body="Quota bug again?", internal=True
    )
    assert [r.body for r in after_note.thread] == ["We are on it.", "Quota bug again?"]
    for user in (alice, bob):
        seen = service.get_request(session=session, actor=user, request_id=request.id)
        assert [r.body for r in seen.thread] == ["We are on it."]
        assert seen.replies == 1
        listed = service.list_requests(session=session, actor=user)
        assert [r.replies for r in listed] == [1]
    # A user's own reply answers with the thread as the user may see it.
    answered = service.add_reply(session=session, mailer=mailer, actor=alice, request_id=request.id, body="Thanks")
    assert all(not r.internal for r in answered.thread) and len(answered.thread) == 2
    assert not any("Quota bug" in subject for subject in world.mail_to(alice))


def test_only_operators_write_internal_notes(session, mailer, world):
    alice = world.user("alice")
    request = ask(session, mailer, alice)
    with pytest.raises(Forbidden):
        service.add_reply(session=session, mailer=mailer, actor=alice, request_id=request.id, body="x", internal=True)


# --- status ------------------------------------------------------------------------------------------


def test_the_requester_may_close_and_reopen_but_not_set_other_statuses(session, mailer, world):
    alice = world.user("alice")
    request = ask(session, mailer, alice)
    assert request.allowed_statuses == ["closed"]
    with pytest.raises(Conflict):
        service.set_status(session=session, mailer=mailer, actor=alice, request_id=request.id, status="resolved")
    closed = service.set_status(session=session, mailer=mailer, actor=alice, request_id=request.id, status="closed")
    assert closed.status == "closed" and not closed.can_reply
    assert closed.allowed_statuses == ["open"]
    reopened = service.set_status(session=session, mailer=mailer, actor=alice, request_id=request.id, status="open")
    assert reopened.status == "open"


def test_project_members_other_than_the_requester_may_not_change_the_status(session, mailer, world):
    alice, bob = world.user("alice"), world.user("bob")
    request = ask(session, mailer, alice, project=world.project(alice, bob))
    with pytest.raises(Forbidden):
        service.set_status(session=session, mailer=mailer, actor=bob, request_id=request.id, status="closed")


def test_operators_set_any_status_and_the_requester_is_told(session, mailer, world):
    alice, op = world.user("alice"), world.operator()
    request = ask(session, mailer, alice)
    for status in ("in_progress", "waiting_for_user", "resolved", "closed", "open"):
        done = service.set_status(session=session, mailer=mailer, actor=op, request_id=request.id, status=status)
        assert done.status == status
    assert sum("now resolved" in s for s in world.mail_to(alice)) == 1
    with pytest.raises(InvalidRequest):
        service.set_status(session=session, mailer=mailer, actor=op, request_id=request.id, status="done")


def test_a_users_reply_puts_a_request_waiting_for_them_back_in_the_queue(session, mailer, world):
    alice, op = world.user("alice"), world.operator()
    request = ask(session, mailer, alice)
    service.set_status(session=session, mailer=mailer, actor=op, request_id=request.id, status="waiting_for_user")
    assert (
        service.add_reply(session=session, mailer=mailer, actor=alice, request_id=request.id, body="Here").status
        == "open"
    )
    service.assign(session=session, mailer=mailer, actor=op, request_id=request.id, assignee_id=op.user_id)
    service.set_status(session=session, mailer=mailer, actor=op, request_id=request.id, status="resolved")
    again = service.add_reply(session=session, mailer=mailer, actor=alice, request_id=request.id, body="Not fixed")
    assert again.status == "in_progress"


def test_a_closed_request_takes_no_user_replies_until_reopened(session, mailer, world):
    alice, op = world.user("alice"), world.operator()
    request = ask(session, mailer, alice)
    service.set_status(session=session, mailer=mailer, actor=alice, request_id=request.id, status="closed")
    with pytest.raises(Conflict):
        service.add_reply(session=session, mailer=mailer, actor=alice, request_id=request.id, body="One more thing")
    noted = service.add_reply(
        session=session, mailer=mailer, actor=op, request_id=request.id, body="Archived", internal=True
    )
    assert noted.status == "closed"


# --- assignment and filters --------------------------------------------------------------------------


def test_only_operators_assign_and_only_to_operators(session, mailer, world):
    alice, bob, op = world.user("alice"), world.user("bob"), world.operator()
    request = ask(session, mailer, alice, project=world.project(alice, bob))
    with pytest.raises(Forbidden):
        service.assign(session=session, mailer=mailer, actor=alice, request_id=request.id, assignee_id=op.user_id)
    with pytest.raises(InvalidRequest):
        service.assign(session=session, mailer=mailer, actor=op, request_id=request.id, assignee_id=bob.user_id)
    other = world.operator("second")
    assigned = service.assign(
        session=session, mailer=mailer, actor=op, request_id=request.id, assignee_id=other.user_id
    )
    assert assigned.assignee.id == other.user_id and assigned.status == "in_progress"
    assert any(s.startswith("Assigned to you") for s in world.mail_to(other))
    unassigned = service.assign(session=session, mailer=mailer, actor=op, request_id=request.id, assignee_id=None)
    assert unassigned.assignee is None


def test_operators_filter_by_status_category_and_assignee(session, mailer, world):
    alice, op = world.user("alice"), world.operator()
    porting = ask(session, mailer, alice, category="porting")
    data = ask(session, mailer, alice, category="data")
    service.assign(session=session, mailer=mailer, actor=op, request_id=data.id, assignee_id=op.user_id)

    def listed(**filters):
        return ids(service.list_requests(session=session, actor=op, **filters)) & {porting.id, data.id}

    assert listed(category="data") == {data.id}
    assert listed(status="open") == {porting.id}
    assert listed(status="in_progress") == {data.id}
    assert listed(assignee_id=op.user_id) == {data.id}
    assert listed(assignee_id="none") == {porting.id}
    with pytest.raises(InvalidRequest):
        service.list_requests(session=session, actor=op, category="gardening")


# --- input and e-mail --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "   "),
        ("subject", "x" * 301),
        ("subject", "nul\x00byte"),
        ("subject", "two\nlines"),  # it becomes an e-mail's Subject header
        ("subject", "line\u2028separator"),
        ("body", ""),
        ("body", "bell\x07"),
        ("category", "gardening"),
    ],
)
def test_bad_input_is_refused_with_the_field_named(session, mailer, world, field, value):
    fields = {"category": "porting", "subject": "Help", "body": "Please"} | {field: value}
    with pytest.raises(InvalidRequest) as refused:
        service.create_request(session=session, mailer=mailer, actor=world.user(), **fields)
    assert refused.value.param == field


def test_the_command_line_actor_cannot_file_requests(session, mailer):
    from jaif.access.schemas import CLI_ACTOR

    with pytest.raises(InvalidRequest):
        service.create_request(session=session, mailer=mailer, actor=CLI_ACTOR, category="other", subject="s", body="b")


def test_e_mail_on_new_requests_and_replies(session, mailer, world):
    alice, op = world.user("alice"), world.operator()
    request = ask(session, mailer, alice, subject="GPU job hangs")
    assert world.mail_to(op) == [f"New [support {request.id[:8]}] GPU job hangs"]
    service.add_reply(session=session, mailer=mailer, actor=op, request_id=request.id, body="Which job id?")
    assert world.mail_to(alice) == [f"Reply to [support {request.id[:8]}] GPU job hangs"]
    service.add_reply(session=session, mailer=mailer, actor=alice, request_id=request.id, body="4711")
    assert world.mail_to(op)[-1] == f"Reply to [support {request.id[:8]}] GPU job hangs"
    outbox = list(mailer.outbox.glob("*.eml"))
    assert len(outbox) == 3
    assert any(f"http://portal.test/support/{request.id}" in p.read_text() for p in outbox)
