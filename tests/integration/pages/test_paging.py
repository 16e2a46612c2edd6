"""The operator console's long lists come in pages of 50 (web/paging.py): the count, links to the
other pages with the filters kept, and a page number out of range or not a number taken as the nearest."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from jaif.access.models import Organisation
from jaif.allocations.models import Allocation
from jaif.applications.models import Application
from jaif.calls.models import AccessCall


def rows(page: str, href: str) -> list[str]:
    return re.findall(rf'href="{href}/([0-9a-f]{{32}})"', page)


async def test_organisations_come_in_pages_of_50(portal, world, session):
    for n in range(120):
        session.add(Organisation(name=f"Paged {n:03d}", sector="academia", country="DE"))
    session.commit()
    browser = await portal.as_(world.operator())
    first = (await browser.get("/operator/organisations")).text
    total = session.query(Organisation).count()
    assert f"{total} organisations, by name: 1 to 50 on this page" in first
    assert 'href="/operator/organisations?page=2"' in first and "Page 1 of 3" in first
    last = (await browser.get("/operator/organisations?page=3")).text
    assert f"101 to {total} on this page" in last and 'rel="next"' not in last
    assert "Page 3 of 3" in (await browser.get("/operator/organisations?page=99")).text
    assert "Page 1 of 3" in (await browser.get("/operator/organisations?page=zero")).text


async def test_applications_come_in_pages_newest_change_first_with_the_filters_kept(portal, world, seeded, session):
    alice = world.user("alice")
    fast_lane = session.scalar(select(AccessCall.id).where(AccessCall.slug == "fast-lane"))
    now = datetime.now(UTC)
    made = []
    for n in range(60):
        application = Application(call_id=fast_lane, applicant_id=alice.user_id, title=f"Paged {n}", team=[],
                                  requested_gpu_hours={}, state="submitted", updated_at=now - timedelta(minutes=n))
        session.add(application)
        made.append(application)
    session.commit()
    browser = await portal.as_(world.operator())
    first = (await browser.get("/operator/applications?call=fast-lane&state=submitted")).text
    assert "60 applications, most recently changed first: 1 to 50 on this page" in first
    assert rows(first, "/operator/applications") == [a.id for a in made[:50]]
    assert 'href="/operator/applications?call=fast-lane&amp;state=submitted&amp;page=2"' in first
    second = (await browser.get("/operator/applications?call=fast-lane&state=submitted&page=2")).text
    assert rows(second, "/operator/applications") == [a.id for a in made[50:]]
    assert 'href="/operator/applications?call=fast-lane&amp;state=submitted"' in second  # page 1: no page=


async def test_allocations_come_in_pages(portal, world, session):
    project = world.project(world.user("bob"))
    now = datetime.now(UTC)
    for n in range(55):
        session.add(Allocation(project_id=project.id, resource="gpu_hours", partition="booster", amount=100.0 + n,
                               used=0.0, starts_at=now, ends_at=now + timedelta(days=30), status="active",
                               created_at=now - timedelta(minutes=n)))
    session.commit()
    browser = await portal.as_(world.operator())
    first = (await browser.get(f"/operator/allocations?project={project.name}")).text
    assert "55 allocations, newest first: 1 to 50 on this page" in first and "Page 1 of 2" in first
    second = (await browser.get(f"/operator/allocations?project={project.name}&page=2")).text
    assert "51 to 55 on this page" in second and ">150<" in second and ">149<" not in second
