"""Who sees projects, organisations and allocations: one test per isolation rule.

- a user sees only the projects they are a member of, and only those projects' allocations;
- a user sees only their own organisation and those of their projects;
- operators see everything; only operators create organisations, projects and allocations, and revoke.
"""

from __future__ import annotations

import pytest

from jaif.access import directory
from jaif.access import service as access
from jaif.access.schemas import CLI_ACTOR, OrganisationIn, ProjectIn
from jaif.allocations import service
from jaif.errors import Forbidden, NotFound
from tests.support.frontdoor import actor_of


@pytest.fixture
def two(session, world):
    """Projects a (member: alice) and b (member: bob), each with a token allocation."""
    found = {}
    for name in ("a", "b"):
        org = world.org(f"Org {name}")
        user = world.user(org=org, email=f"{name}@example.org")
        project = access.create_project(
            session=session, name=f"project-{name}", organisation=org.name, token_quota=1000
        )
        access.add_member(session=session, project_name=project.name, email=user.email, role="member")
        [allocation] = service.list_allocations(session=session, actor=CLI_ACTOR, project_id=project.id)
        found[name] = (actor_of(user), project, allocation, org)
    return found


def test_a_user_sees_only_their_projects(session, two):
    alice, a, _alloc, _org = two["a"]
    _bob, b, _alloc_b, _org_b = two["b"]
    assert directory.list_projects(session=session, actor=alice) == [a]
    with pytest.raises(NotFound):
        directory.get_project(session=session, actor=alice, project_id=b.id)
    assert directory.project_out(a).members[0].email == "a@example.org"


def test_a_user_sees_only_their_projects_allocations(session, two):
    alice, a, mine, _org = two["a"]
    _bob, b, theirs, _org_b = two["b"]
    assert [x.id for x in service.list_allocations(session=session, actor=alice)] == [mine.id]
    with pytest.raises(NotFound):
        service.get_allocation(session=session, actor=alice, allocation_id=theirs.id)
    with pytest.raises(NotFound):
        service.list_allocations(session=session, actor=alice, project_id=b.id)
    with pytest.raises(NotFound):
        service.list_allocations(session=session, actor=alice, project_name=b.name)


def test_a_user_sees_only_their_organisations(session, world, two):
    alice, _a, _alloc, org_a = two["a"]
    _bob, _b, _alloc_b, org_b = two["b"]
    assert directory.list_organisations(session=session, actor=alice) == [org_a]
    with pytest.raises(NotFound):
        directory.get_organisation(session=session, actor=alice, organisation_id=org_b.id)
    loner = actor_of(world.user())
    assert directory.list_organisations(session=session, actor=loner) == []


def test_operators_see_everything(session, world, two):
    operator = actor_of(world.user(role="operator"))
    for who in (operator, CLI_ACTOR):
        assert {p.name for p in directory.list_projects(session=session, actor=who)} >= {"project-a", "project-b"}
        assert len(service.list_allocations(session=session, actor=who)) >= 2
        assert len(directory.list_organisations(session=session, actor=who)) >= 2


@pytest.mark.parametrize("role", ["user", "reviewer"])
def test_only_operators_create_and_revoke(session, world, two, role):
    actor = actor_of(world.user(role=role))
    member, a, allocation, org = two["a"]
    for who in (actor, member):
        with pytest.raises(Forbidden):
            service.create_allocation(session=session, actor=who, project_id=a.id, resource="tokens", amount=5, days=1)
        with pytest.raises(Forbidden):
            service.revoke_allocation(session=session, actor=who, allocation_id=allocation.id)
        with pytest.raises(Forbidden):
            directory.create_organisation(
                session=session, actor=who, data=OrganisationIn(name="New", sector="sme", country="AT")
            )
        with pytest.raises(Forbidden):
            directory.create_project(session=session, actor=who, data=ProjectIn(name="new", organisation_id=org.id))
    assert allocation.status == "active"


def test_an_operator_creates_a_project_with_its_pi(session, world):
    operator = actor_of(world.user(role="operator"))
    org = directory.create_organisation(
        session=session, actor=operator, data=OrganisationIn(name="Fraunhofer X", sector="public", country="DE")
    )
    pi = world.user(email="lead@fraunhofer.example")
    project = directory.create_project(
        session=session,
        actor=operator,
        data=ProjectIn(name="vision", organisation_id=org.id, pi_email=pi.email, token_quota=10_000),
    )
    out = directory.project_out(project)
    assert (out.token_quota, [(m.email, m.role) for m in out.members]) == (10_000, [(pi.email, "pi")])
    assert directory.list_projects(session=session, actor=actor_of(pi)) == [project]
