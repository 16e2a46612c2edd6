"""Training events against a real database: seats, the waitlist and its promotion, deadlines."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from jaif.access.models import User
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jaif.notify.models import Notification
from jaif.training import service
from jaif.training.models import TrainingEvent
from tests.support.services import actor_of


def now() -> datetime:
    return datetime.now(UTC)


def plan(session, op, *, seats=2, starts_in=timedelta(days=7), closes_in=None, **fields):
    starts = now() + starts_in
    return service.create_event(
        session=session,
        actor=op,
        title=fields.pop("title", "Scaling LLM training on JUPITER"),
        starts_at=starts,
        ends_at=starts + timedelta(hours=6),
        seats=seats,
        registration_closes_at=now() + closes_in if closes_in is not None else None,
        **fields,
    )


def register(session, mailer, actor, event):
    return service.register(session=session, mailer=mailer, actor=actor, event_id=event.id)


def cancel(session, mailer, actor, event, registration_id=None):
    return service.cancel(
        session=session, mailer=mailer, actor=actor, event_id=event.id, registration_id=registration_id
    )


def test_registrations_beyond_the_seats_are_waitlisted_in_order(session, mailer, world):
    event = plan(session, world.operator(), seats=2)
    people = [world.user(f"u{i}") for i in range(4)]
    done = [register(session, mailer, p, event) for p in people]
    assert [r.status for r in done] == ["registered", "registered", "waitlisted", "waitlisted"]
    assert [r.waitlist_position for r in done] == [None, None, 1, 2]
    shown = service.get_event(session=session, actor=people[3], event_id=event.id)
    assert (shown.registered, shown.waitlisted, shown.seats_left) == (2, 2, 0)
    assert shown.my_registration.status == "waitlisted" and shown.my_registration.waitlist_position == 2
    assert world.mail_to(people[2]) == ["Waitlisted: Scaling LLM training on JUPITER"]


def test_cancelling_a_seat_promotes_the_longest_waiting_person(session, mailer, world):
    event = plan(session, world.operator(), seats=1)
    first, second, third = world.user("first"), world.user("second"), world.user("third")
    seat = register(session, mailer, first, event)
    register(session, mailer, second, event)
    register(session, mailer, third, event)
    assert cancel(session, mailer, first, event).status == "cancelled"
    promoted = service.get_event(session=session, actor=second, event_id=event.id).my_registration
    assert promoted.status == "registered"
    assert service.get_event(session=session, actor=third, event_id=event.id).my_registration.waitlist_position == 1
    assert world.mail_to(second)[-1] == "A seat for you: Scaling LLM training on JUPITER"
    assert seat.id != promoted.id


def test_cancelling_a_waitlist_place_moves_the_others_up_without_freeing_a_seat(session, mailer, world):
    event = plan(session, world.operator(), seats=1)
    first, second, third = world.user("first"), world.user("second"), world.user("third")
    for person in (first, second, third):
        register(session, mailer, person, event)
    cancel(session, mailer, second, event)
    shown = service.get_event(session=session, actor=third, event_id=event.id)
    assert (shown.registered, shown.waitlisted) == (1, 1)
    assert shown.my_registration.waitlist_position == 1


def test_no_registration_after_the_deadline(session, mailer, world):
    event = plan(session, world.operator(), closes_in=timedelta(minutes=-1))
    assert service.get_event(session=session, actor=world.user(), event_id=event.id).registration_open is False
    with pytest.raises(Conflict) as refused:
        register(session, mailer, world.user(), event)
    assert refused.value.code == "registration_closed" and "deadline" in refused.value.message


def test_no_registration_or_cancellation_after_the_start(session, mailer, world):
    op, early = world.operator(), world.user("early")
    event = plan(session, op, starts_in=timedelta(days=1))
    register(session, mailer, early, event)
    session.get(TrainingEvent, event.id).starts_at = now() - timedelta(minutes=5)
    session.flush()
    with pytest.raises(Conflict) as refused:
        register(session, mailer, world.user("late"), event)
    assert "started" in refused.value.message
    with pytest.raises(Conflict):
        cancel(session, mailer, early, event)


def test_registering_twice_is_refused_and_coming_back_goes_to_the_end_of_the_queue(session, mailer, world):
    event = plan(session, world.operator(), seats=1)
    alice, bob = world.user("alice"), world.user("bob")
    register(session, mailer, alice, event)
    with pytest.raises(Conflict):
        register(session, mailer, alice, event)
    cancel(session, mailer, alice, event)
    register(session, mailer, bob, event)
    back = register(session, mailer, alice, event)
    assert back.status == "waitlisted" and back.waitlist_position == 1


def test_more_seats_promote_at_once_and_seats_cannot_drop_below_those_taken(session, mailer, world):
    op = world.operator()
    event = plan(session, op, seats=1)
    people = [world.user(f"u{i}") for i in range(3)]
    for person in people:
        register(session, mailer, person, event)
    grown = service.update_event(session=session, mailer=mailer, actor=op, event_id=event.id, changes={"seats": 2})
    assert (grown.registered, grown.waitlisted, grown.seats_left) == (2, 1, 0)
    with pytest.raises(Conflict):
        service.update_event(session=session, mailer=mailer, actor=op, event_id=event.id, changes={"seats": 1})


def test_moving_an_event_tells_everyone_registered_or_waiting(session, mailer, world):
    op = world.operator()
    event = plan(session, op, seats=1)
    seated, waiting, gone = world.user("seated"), world.user("waiting"), world.user("gone")
    for person in (seated, waiting, gone):
        register(session, mailer, person, event)
    cancel(session, mailer, gone, event)
    service.update_event(
        session=session, mailer=mailer, actor=op, event_id=event.id, changes={"location": "JSC, Jülich, room 2"}
    )
    for person in (seated, waiting):
        assert world.mail_to(person)[-1] == "Changed: Scaling LLM training on JUPITER"
    assert "Changed: Scaling LLM training on JUPITER" not in world.mail_to(gone)


def test_the_list_shows_seats_left_and_hides_past_events(session, mailer, world):
    op, alice = world.operator(), world.user("alice")
    upcoming = plan(session, op, seats=3, title="Upcoming")
    past = plan(session, op, seats=3, starts_in=timedelta(days=-10), title="Past")
    register(session, mailer, alice, upcoming)
    listed = {e.id: e for e in service.list_events(session=session, actor=alice)}
    assert upcoming.id in listed and past.id not in listed
    assert listed[upcoming.id].seats_left == 2 and listed[upcoming.id].my_registration.status == "registered"
    assert past.id in {e.id for e in service.list_events(session=session, actor=alice, include_past=True)}


def test_unpublished_events_exist_only_for_operators(session, mailer, world):
    op, alice = world.operator(), world.user("alice")
    draft = plan(session, op, is_published=False)
    assert draft.id not in {e.id for e in service.list_events(session=session, actor=alice)}
    for attempt in (
        lambda: service.get_event(session=session, actor=alice, event_id=draft.id),
        lambda: register(session, mailer, alice, draft),
        lambda: service.list_registrations(session=session, actor=alice, event_id=draft.id),
    ):
        with pytest.raises(NotFound):
            attempt()
    assert service.get_event(session=session, actor=op, event_id=draft.id).registration_open is False


def test_only_operators_plan_and_change_events(session, mailer, world):
    alice = world.user("alice")
    with pytest.raises(Forbidden):
        plan(session, alice)
    event = plan(session, world.operator())
    with pytest.raises(Forbidden):
        service.update_event(session=session, mailer=mailer, actor=alice, event_id=event.id, changes={"seats": 99})


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"ends_at": now() - timedelta(days=30)}, "ends_at"),
        ({"registration_closes_at": now() + timedelta(days=30)}, "registration_closes_at"),
        ({"seats": 0}, "seats"),
        ({"title": "  "}, "title"),
        ({"location": "x\x00"}, "location"),
        ({"title": "Course\r\nBcc: all@example.org"}, "title"),
        ({"id": "mine"}, "id"),
    ],
)
def test_bad_changes_are_refused_by_field(session, mailer, world, changes, param):
    op = world.operator()
    event = plan(session, op)
    with pytest.raises(InvalidRequest) as refused:
        service.update_event(session=session, mailer=mailer, actor=op, event_id=event.id, changes=changes)
    assert refused.value.param == param


def test_operators_see_every_registration_users_only_their_own(session, mailer, world):
    op = world.operator()
    event = plan(session, op, seats=1)
    alice, bob, carol = world.user("alice"), world.user("bob"), world.user("carol")
    for person in (alice, bob, carol):
        register(session, mailer, person, event)
    everyone = service.list_registrations(session=session, actor=op, event_id=event.id)
    assert [(r.user.id, r.status, r.waitlist_position) for r in everyone] == [
        (alice.user_id, "registered", None),
        (bob.user_id, "waitlisted", 1),
        (carol.user_id, "waitlisted", 2),
    ]
    own = service.list_registrations(session=session, actor=carol, event_id=event.id)
    assert [(r.user.id, r.waitlist_position) for r in own] == [(carol.user_id, 2)]


def test_a_user_cannot_cancel_someone_elses_registration_but_an_operator_can(session, mailer, world):
    op = world.operator()
    event = plan(session, op, seats=1)
    alice, bob = world.user("alice"), world.user("bob")
    seat = register(session, mailer, alice, event)
    register(session, mailer, bob, event)
    with pytest.raises(NotFound):
        cancel(session, mailer, bob, event, registration_id=seat.id)
    assert cancel(session, mailer, op, event, registration_id=seat.id).status == "cancelled"
    assert service.get_event(session=session, actor=bob, event_id=event.id).my_registration.status == "registered"


def test_two_people_never_take_the_last_seat_at_once(engine, mailer):
    """Separate connections, committed data: what concurrent portal requests do."""
    with Session(engine, expire_on_commit=False) as setup, setup.begin():
        op = User(email=f"op-{id(setup)}@example.org", role="operator")
        people = [User(email=f"race{i}-{id(setup)}@example.org") for i in range(6)]
        setup.add_all([op, *people])
        setup.flush()
        event = plan(setup, actor_of(op), seats=1)
    barrier = threading.Barrier(len(people))
    outcomes: list[str] = []

    def go(person: User) -> None:
        with Session(engine) as own, own.begin():
            barrier.wait()
            outcomes.append(register(own, mailer, actor_of(person), event).status)

    threads = [threading.Thread(target=go, args=(p,)) for p in people]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes) == ["registered"] + ["waitlisted"] * 5
    finally:
        with Session(engine) as cleanup, cleanup.begin():
            cleanup.execute(delete(TrainingEvent).where(TrainingEvent.id == event.id))
            cleanup.execute(delete(Notification).where(Notification.to_email.in_([p.email for p in people])))
            cleanup.execute(delete(User).where(User.id.in_([op.id, *(p.id for p in people)])))
