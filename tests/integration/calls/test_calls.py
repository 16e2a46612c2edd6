"""Access calls against a real, migrated database: the seeded calls, and operators creating and changing calls."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jaif.access.schemas import CLI_ACTOR
from jaif.bootstrap import initialise
from jaif.calls import service
from jaif.calls.schemas import CallIn, CallPatch
from jaif.calls.seed import seed_calls
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound


def test_seeded_on_first_start_only(session):
    made = {c.slug: c for c in seed_calls(session)}
    assert set(made) == {"playground", "fast-lane", "large-scale"}
    playground, fast, large = made["playground"], made["fast-lane"], made["large-scale"]
    assert (playground.kind, playground.review_mode, playground.target_days_to_access) == ("playground", "automatic", 2)
    assert playground.max_gpu_hours == 5000 and playground.durations_months == [1, 2] and playground.max_tokens
    assert (fast.review_mode, fast.max_gpu_hours, fast.durations_months, fast.target_days_to_access) == (
        "technical",
        50_000,
        [1, 2, 3],
        4,
    )
    assert (large.review_mode, large.durations_months) == ("peer", [3, 6, 12])
    assert large.min_gpu_hours > 50_000 and len(large.cutoffs) == 12
    assert all(c.eligible_countries is None and c.eligible_sectors == [] for c in made.values())
    assert seed_calls(session) == []


def test_initialise_seeds_the_calls(session):
    initialise(session=session, builtin_models=False)
    slugs = {c.slug for c in service.list_calls(session=session, actor=None)}
    assert slugs == {"playground", "fast-lane", "large-scale"}
    initialise(session=session, builtin_models=False)
    assert len(service.list_calls(session=session, actor=None)) == 3


def _call(**fields) -> CallIn:
    return CallIn(slug="ai-startups", name="AI start-ups", kind="custom", **fields)


def test_operator_creates_and_changes_a_call(session, world):
    _user, operator = world.actor(role="operator")
    call = service.create_call(
        session=session,
        actor=operator,
        data=_call(
            offered_gpu_hours={"booster": 10_000},
            eligible_sectors=["startup", "sme"],
            eligible_countries=["de", "EL"],
            durations_months=[3, 1, 3],
            review_mode="technical",
        ),
    )
    assert call.eligible_countries == ["DE", "GR"] and call.durations_months == [1, 3]
    assert service.get_call(session=session, ref="ai-startups") is call
    assert service.get_call(session=session, ref=call.id) is call
    changed = service.update_call(
        session=session, actor=operator, ref="ai-startups", data=CallPatch(max_gpu_hours=2000, target_days_to_access=5)
    )
    assert (changed.max_gpu_hours, changed.target_days_to_access, changed.name) == (2000, 5, "AI start-ups")
    out = service.out(changed)
    assert out.is_open and out.offered_gpu_hours == {"booster": 10_000}


def test_the_cli_acts_as_operator(session):
    assert service.create_call(session=session, actor=CLI_ACTOR, data=_call()).slug == "ai-startups"


def test_only_operators_create_or_change_calls(session, world):
    for role in ("user", "reviewer"):
        _user, actor = world.actor(role=role)
        with pytest.raises(Forbidden):
            service.create_call(session=session, actor=actor, data=_call())
    service.create_call(session=session, actor=CLI_ACTOR, data=_call())
    _user, user = world.actor()
    with pytest.raises(Forbidden):
        service.update_call(session=session, actor=user, ref="ai-startups", data=CallPatch(is_active=False))


def test_bad_calls_are_refused(session):
    service.create_call(session=session, actor=CLI_ACTOR, data=_call())
    with pytest.raises(Conflict):
        service.create_call(session=session, actor=CLI_ACTOR, data=_call())
    with pytest.raises(InvalidRequest, match="min_gpu_hours"):
        service.create_call(
            session=session,
            actor=CLI_ACTOR,
            data=CallIn(slug="x", name="x", kind="custom", min_gpu_hours=10, max_gpu_hours=5),
        )
    now = utcnow()
    with pytest.raises(InvalidRequest, match="close after it opens"):
        service.create_call(
            session=session,
            actor=CLI_ACTOR,
            data=CallIn(slug="y", name="y", kind="custom", opens_at=now, closes_at=now - timedelta(1)),
        )
    with pytest.raises(InvalidRequest, match="two-letter"):
        service.create_call(
            session=session,
            actor=CLI_ACTOR,
            data=CallIn(slug="z", name="z", kind="custom", eligible_countries=["Germany"]),
        )
    with pytest.raises(InvalidRequest, match="cannot be null"):
        service.update_call(session=session, actor=CLI_ACTOR, ref="ai-startups", data=CallPatch(name=None))
    with pytest.raises(NotFound):
        service.get_call(session=session, ref="nope")


def test_a_call_offers_only_partitions_the_site_has(session):
    """Issue 14, item 1: a call on a partition the site lacks is refused when it is made or changed."""
    offer = {"booster": 1000.0}
    with pytest.raises(InvalidRequest, match="this site has no partition 'booster'; it has gpu, local") as refused:
        service.create_call(session=session, actor=CLI_ACTOR, partitions=["local", "gpu"],
                            data=CallIn(slug="far", name="far", kind="custom", offered_gpu_hours=offer))
    assert refused.value.param == "offered_gpu_hours"
    made = service.create_call(session=session, actor=CLI_ACTOR, partitions=["local"],
                               data=CallIn(slug="near", name="near", kind="custom", offered_gpu_hours={"local": 10}))
    with pytest.raises(InvalidRequest, match="no partition 'booster'"):
        service.update_call(session=session, actor=CLI_ACTOR, ref=made.slug, partitions=["local"],
                            data=CallPatch(offered_gpu_hours=offer))
    assert service.get_call(session=session, ref="near").offered_gpu_hours == {"local": 10}


def test_inactive_calls_are_listed_for_operators_who_ask(session, world):
    seed_calls(session)
    service.update_call(session=session, actor=CLI_ACTOR, ref="fast-lane", data=CallPatch(is_active=False))
    _user, user = world.actor()
    assert {c.slug for c in service.list_calls(session=session, actor=user, include_inactive=True)} == {
        "playground",
        "large-scale",
    }
    assert len(service.list_calls(session=session, actor=CLI_ACTOR, include_inactive=True)) == 3
    assert not service.out(service.get_call(session=session, ref="fast-lane")).is_open
