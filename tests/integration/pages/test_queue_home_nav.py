"""The review queue in pages (those to review first), the home page in a few SQL statements however many
projects the user has, and the global navigation's links to the factory's services."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select

from jaif.allocations.models import Allocation
from jaif.applications.models import Application, Review
from jaif.calls.models import AccessCall


def review_rows(page: str) -> list[str]:
    return re.findall(r'href="/review/([0-9a-f]{32})"', page)


async def test_the_review_queue_comes_in_pages_those_to_review_first(portal, world, seeded, session):
    reviewer, applicant = world.user("rita", role="reviewer"), world.user("alice")
    fast_lane = session.scalar(select(AccessCall.id).where(AccessCall.slug == "fast-lane"))
    now = datetime.now(UTC)
    open_ones, done = [], []
    for n in range(60):
        still_open = n % 3 == 0  # 20 to review, 40 reviewed or closed
        application = Application(call_id=fast_lane, applicant_id=applicant.user_id, title=f"Queued {n}", team=[],
                                  requested_gpu_hours={}, state="technical_review" if still_open else "accepted")
        session.add(application)
        session.flush()
        review = Review(application_id=application.id, reviewer_id=reviewer.user_id, stage="technical",
                        assigned_at=now - timedelta(minutes=n), score=None if still_open else 4,
                        submitted_at=None if still_open else now)
        session.add(review)
        (open_ones if still_open else done).append(review)
    session.add(Review(application_id=application.id, reviewer_id=world.user("other", role="reviewer").user_id,
                       stage="peer"))  # someone else's: never listed
    session.commit()
    browser = await portal.as_(reviewer)

    first = (await browser.get("/review")).text
    assert "20 to review; 60 reviews, those to review first, then newest first: 1 to 50 on this page" in first
    assert review_rows(first) == [r.id for r in open_ones] + [r.id for r in done[:30]]
    assert 'href="/review?page=2"' in first and "Page 1 of 2" in first
    second = (await browser.get("/review?page=2")).text
    assert review_rows(second) == [r.id for r in done[30:]]
    assert "Nothing to review" not in second and 'href="/review">first page</a>' in second
    assert "Page 2 of 2" in (await browser.get("/review?page=7")).text
    assert "Page 1 of 2" in (await browser.get("/review?page=x")).text
    assert (await browser.get(f"/review/{open_ones[0].id}")).status_code == 200
    assert (await browser.get(f"/review/{'0' * 32}")).status_code == 404


async def test_the_home_page_takes_as_many_statements_for_six_projects_as_for_one(portal, world, session):
    bob = world.user("bob")
    browser = await portal.as_(bob)
    now = datetime.now(UTC)

    def add_project(n: int) -> None:
        project = world.project(pi=bob)
        for resource, partition, amount in (("gpu_hours", "booster", 500.0), ("tokens", None, 10_000.0)):
            session.add(Allocation(project_id=project.id, resource=resource, partition=partition, amount=amount,
                                   used=0.0, starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=30),
                                   status="active"))
        session.add(Allocation(project_id=project.id, resource="gpu_hours", partition="booster", amount=1.0,
                               used=0.0, starts_at=now - timedelta(days=9), ends_at=now - timedelta(days=1),
                               status="expired"))
        project.token_quota = 10_000
        session.commit()

    async def statements_of_home() -> tuple[int, str]:
        seen: list[str] = []

        def record(conn, cursor, statement, parameters, context, executemany):
            seen.append(statement)

        event.listen(session.get_bind(), "before_cursor_execute", record)
        try:
            page = await browser.get("/")
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", record)
        assert page.status_code == 200
        return len(seen), page.text

    add_project(0)
    one, page = await statements_of_home()
    gpu, tokens = page.count("GPU-hours on booster"), page.count("Inference tokens")
    assert gpu and tokens and "1 allocation ended or revoked" in page
    for n in range(1, 6):
        add_project(n)
    six, page = await statements_of_home()
    assert page.count("GPU-hours on booster") == 6 * gpu and page.count("Inference tokens") == 6 * tokens
    assert six == one and six <= 12, (one, six)


async def test_every_page_links_the_support_desk_catalogue_and_training(portal, world):
    browser = await portal.as_(world.user("carol"))
    for path in ("/", "/usage", "/apply", "/support", "/account"):
        page = (await browser.get(path)).text
        nav = page[page.index('<nav aria-label="Main">'):page.index("</nav>")]
        for href in ("/support", "/catalogue", "/training"):
            assert nav.count(f'href="{href}"') == 1, (path, href)
    support = (await browser.get("/support")).text
    assert '<a href="/support" aria-current="page">' in support
    signed_out = (await portal.api.anonymous.get("/login")).text
    public_nav = signed_out[signed_out.index("<nav"):signed_out.index("</nav>")]
    for href in ("/apply", "/catalogue", "/training"):  # the public pages, once each; nothing else of the portal
        assert public_nav.count(f'href="{href}"') == 1, href
    assert 'href="/support"' not in public_nav and 'href="/usage"' not in public_nav


async def test_the_project_page_names_its_organisation_and_members(portal, world, session):
    pia, max_ = world.user("pia"), world.user("max")
    lab = world.project(max_, pi=pia)
    session.commit()
    page = (await (await portal.as_(pia)).get(f"/projects/{lab.id}")).text
    assert f'<p class="meta">Org {lab.name}' in page
    assert f"Pia, {pia.email} (principal investigator)" in page
    assert f"Max, {max_.email} (member)" in page


async def test_the_bars_show_small_gpu_hour_charges(portal, world, session):
    """A job charged 0.0175 GPU-hours shows as 0.02 (as on the jobs page), not as 0.0."""
    pia = world.user("pia")
    lab = world.project(pi=pia)
    now = datetime.now(UTC)
    session.add(Allocation(project_id=lab.id, resource="gpu_hours", partition="local", amount=50.0, used=0.0175,
                           starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=30), status="active"))
    session.commit()
    browser = await portal.as_(pia)
    for path in ("/", f"/projects/{lab.id}"):
        page = (await browser.get(path)).text
        assert "0.02 of 50 GPU-hours used" in page, path
