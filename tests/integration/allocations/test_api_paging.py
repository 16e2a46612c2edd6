"""Every list under /api/v1 comes in pages (web/api_paging.py): ``limit`` and ``offset`` in, the body a JSON
array as before, ``X-Total-Count`` and RFC 8288 ``Link`` headers out; bad bounds are a 400 in the error
shape, never a 500; pages are in a fixed order and together are the whole list; and what a user may not
see is not counted either."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from jaif.access import service as access
from jaif.access.schemas import CLI_ACTOR
from jaif.allocations import service
from jaif.applications.models import Application
from jaif.db.base import utcnow
from tests.support.frontdoor_api import bearer, error_of

LISTS = [
    "/api/v1/organisations", "/api/v1/projects", "/api/v1/calls", "/api/v1/applications", "/api/v1/reviews",
    "/api/v1/allocations", "/api/v1/support-requests", "/api/v1/solutions", "/api/v1/training-events",
    "/api/v1/me/tokens",
]


def links(response) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers["link"])}


def _allocations(session, world, n: int):
    org = world.org()
    project = access.create_project(session=session, name=f"paged-{world._n()}", organisation=org.name)
    start = utcnow() - timedelta(days=1)
    for i in range(n):
        service.create_allocation(session=session, actor=CLI_ACTOR, project_id=project.id, resource="gpu_hours",
                                  partition="booster", amount=10.0 + i, starts_at=start, days=30)
    return project


async def test_allocations_come_in_pages_in_a_fixed_order_with_total_and_links(api, session, world):
    project = _allocations(session, world, 7)
    op = bearer(session, world.user(role="operator"))
    everything = await api.get("/api/v1/allocations", params={"project_id": project.id}, headers=op)
    assert everything.headers["x-total-count"] == "7" and len(everything.json()) == 7
    whole = [a["id"] for a in everything.json()]
    expected = [a.id for a in service.list_allocations(session=session, actor=CLI_ACTOR, project_id=project.id)]
    assert whole == expected  # newest first, the id breaking ties

    pages, url = [], f"/api/v1/allocations?project_id={project.id}&limit=3"
    while url:
        page = await api.get(url, headers=op)
        assert page.status_code == 200 and page.headers["x-total-count"] == "7"
        pages.append([a["id"] for a in page.json()])
        found = links(page)
        assert f"project_id={project.id}" in found["first"] and "limit=3" in found["last"]  # filters kept
        url = found.get("next")
    assert [len(p) for p in pages] == [3, 3, 1] and sum(pages, []) == whole
    last = await api.get("/api/v1/allocations", params={"project_id": project.id, "limit": 3, "offset": 6},
                         headers=op)
    assert "offset=3" in links(last)["prev"] and "next" not in links(last) and "offset=6" in links(last)["last"]
    beyond = await api.get("/api/v1/allocations", params={"project_id": project.id, "offset": 50}, headers=op)
    assert beyond.json() == [] and beyond.headers["x-total-count"] == "7"
    assert len((await api.get("/api/v1/allocations", params={"limit": 1000}, headers=op)).json()) >= 7
    assert len((await api.get("/api/v1/allocations", headers=op)).json()) <= 100  # the default page


BAD_BOUNDS = [
    ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": ""}, "limit"),
    ({"offset": -1}, "offset"), ({"offset": 10_000_001}, "offset"), ({"offset": "9" * 30}, "offset"),
]


@pytest.mark.parametrize("path", LISTS)
async def test_bad_bounds_are_a_400_naming_the_parameter(api, session, world, path):
    user = bearer(session, world.user())
    for params, param in BAD_BOUNDS:
        error = error_of(await api.get(path, params=params, headers=user), 400)
        assert error["param"] == f"query.{param}" and error["type"] == "invalid_request_error", (params, error)


@pytest.mark.parametrize("path", LISTS)
async def test_every_list_says_its_total_and_links_its_pages(api, session, world, path):
    response = await api.get(path, params={"limit": 1}, headers=bearer(session, world.user(role="operator")))
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list) and len(response.json()) <= 1
    assert int(response.headers["x-total-count"]) >= len(response.json())
    assert {"first", "last"} <= set(links(response))


async def test_project_lists_page_through_members_keys_and_invitations(api, session, world):
    pi = world.user()
    project = access.create_project(session=session, name="team", organisation=world.org().name)
    access.add_member(session=session, project_name="team", email=pi.email, role="pi")
    for _ in range(3):
        access.add_member(session=session, project_name="team", email=world.user().email, role="member")
    as_pi = bearer(session, pi)
    members = await api.get(f"/api/v1/projects/{project.id}/members", params={"limit": 2}, headers=as_pi)
    assert members.headers["x-total-count"] == "4" and len(members.json()) == 2 and "next" in links(members)
    rest = await api.get(links(members)["next"], headers=as_pi)
    assert len(rest.json()) == 2 and not {m["user_id"] for m in rest.json()} & {m["user_id"] for m in members.json()}
    for path in ("keys", "invitations"):
        response = await api.get(f"/api/v1/projects/{project.id}/{path}", params={"limit": 5}, headers=as_pi)
        assert response.status_code == 200 and response.headers["x-total-count"] == "0"


async def test_isolation_holds_in_pages_and_totals(api, session, world):
    mine = _allocations(session, world, 3)
    _allocations(session, world, 4)  # someone else's
    member, stranger = world.user(), world.user()
    access.add_member(session=session, project_name=mine.name, email=member.email, role="member")
    seen = await api.get("/api/v1/allocations", params={"limit": 2}, headers=bearer(session, member))
    assert seen.headers["x-total-count"] == "3" and {a["project_id"] for a in seen.json()} == {mine.id}
    rest = await api.get("/api/v1/allocations", params={"limit": 2, "offset": 2}, headers=bearer(session, member))
    assert [a["project_id"] for a in rest.json()] == [mine.id]
    as_stranger = bearer(session, stranger)
    for path in ("/api/v1/allocations", "/api/v1/projects", "/api/v1/applications", "/api/v1/reviews",
                 "/api/v1/support-requests", "/api/v1/organisations"):
        response = await api.get(path, headers=as_stranger)
        assert (response.json(), response.headers["x-total-count"]) == ([], "0"), path


async def test_applications_by_call_state_and_mine_in_pages(api, session, world):
    applicant, other = world.user(), world.user()
    fast_lane, playground = world.call("fast-lane"), world.call("playground")
    now = utcnow()
    made = []
    for n in range(5):
        for who, call in ((applicant, fast_lane), (other, fast_lane), (applicant, playground)):
            application = Application(call_id=call.id, applicant_id=who.id, title=f"A {n}", team=[],
                                      requested_gpu_hours={}, state="submitted" if n % 2 else "draft",
                                      updated_at=now - timedelta(minutes=n))
            session.add(application)
            made.append(application)
    session.flush()
    op = bearer(session, world.user(role="operator"))
    found = await api.get("/api/v1/applications", params={"call": "fast-lane", "state": "submitted", "limit": 3},
                          headers=op)
    assert found.headers["x-total-count"] == "4" and len(found.json()) == 3
    assert {(a["call_id"], a["state"]) for a in found.json()} == {(fast_lane.id, "submitted")}
    assert [a["updated_at"] for a in found.json()] == sorted((a["updated_at"] for a in found.json()), reverse=True)
    assert "call=fast-lane" in links(found)["next"] and "state=submitted" in links(found)["next"]
    own = await api.get("/api/v1/applications", params={"mine": "true"}, headers=bearer(session, applicant))
    assert own.headers["x-total-count"] == "10"
    assert error_of(await api.get("/api/v1/applications", params={"state": "lost"}, headers=op), 400)


async def test_organisations_by_sector_and_country(api, session, world):
    world.org("Start-up AT", sector="startup", country="AT")
    world.org("Start-up DE", sector="startup", country="DE")
    op = bearer(session, world.user(role="operator"))
    found = await api.get("/api/v1/organisations", params={"sector": "startup", "country": "at"}, headers=op)
    assert [o["name"] for o in found.json()] == ["Start-up AT"] and found.headers["x-total-count"] == "1"
    assert error_of(await api.get("/api/v1/organisations", params={"sector": "bank"}, headers=op), 400)["param"]


@pytest.mark.parametrize(("url", "param"), [
    ("/api/v1/organisations?sector=sme&country=%00", "country"), ("/api/v1/projects?name=a%00b", "name"),
    ("/api/v1/jobs?project=x%00", "project"), ("/api/v1/applications?call=%00", "call"), ("/login?next=%00", "next"),
    ("/api/v1/projects?a%00=1", None),
])
async def test_a_nul_character_in_the_query_is_a_400_not_a_database_error(api, session, world, url, param):
    op = bearer(session, world.user(role="operator"))
    error = error_of(await api.get(url, headers=op), 400)
    assert error["message"] == "The query string may not contain NUL characters (%00)."
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
