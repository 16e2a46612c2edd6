"""What operators used to need the command line for, in the portal: planning and changing training events
and curating the catalogue (errors beside their fields with the input kept, CSRF, 403 for everyone else);
and a PI's renewal and top-up requests from the project page, which operators then see and decide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from jaif.applications.models import Application
from jaif.catalogue import service as catalogue
from jaif.training import service as training
from tests.integration.pages.conftest import location_id
from tests.support.portal import csrf_of

SOON = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=30)
EVENT = {"title": "Scaling <LLMs>", "description": "Hands on.", "starts_at": f"{SOON:%Y-%m-%dT09:00}",
         "ends_at": f"{SOON:%Y-%m-%dT17:00}", "location": "JSC, Jülich", "seats": "30",
         "registration_closes_at": "", "is_published": "1"}


async def test_edit_pages_are_for_operators_only(portal, world, session):
    op = world.operator()
    event = training.create_event(session=session, actor=op, title="T", starts_at=SOON,
                                  ends_at=SOON + timedelta(hours=1), seats=3)
    catalogue.create_solution(session=session, actor=op, slug="med-qa", name="Medical QA", is_published=True)
    session.commit()
    browser = await portal.as_(world.user("pia"))
    for path in ("/training/new", f"/training/{event.id}/edit", "/catalogue/new", "/catalogue/med-qa/edit"):
        assert (await browser.get(path)).status_code == 403, path
    page = (await browser.get("/account")).text  # any page with a form: a valid token of this session
    token = csrf_of(page)
    for path in ("/training/new", f"/training/{event.id}/edit", "/catalogue/new", "/catalogue/med-qa/edit"):
        refused = await browser.client.post(path, data={**EVENT, "slug": "x", "name": "x", "csrf_token": token})
        assert refused.status_code == 403, path
    assert "Plan a training event" not in (await browser.get("/training")).text
    assert "Change this solution" not in (await browser.get("/catalogue/med-qa")).text
    assert training.get_event(session=session, actor=op, event_id=event.id).title == "T"


async def test_an_operator_plans_and_changes_a_training_event(portal, world, session):
    op = world.operator()
    session.commit()
    browser = await portal.as_(op)
    assert 'href="/training/new"' in (await browser.get("/training")).text
    bad = await browser.submit("/training/new", {**EVENT, "title": "", "seats": "many", "ends_at": "tomorrow"})
    assert bad.status_code == 400
    for field in ("title", "seats", "ends_at"):
        assert f'id="f-{field}-error"' in bad.text, field
    assert 'value="many"' in bad.text and 'value="tomorrow"' in bad.text and "JSC, Jülich" in bad.text
    backwards = await browser.submit("/training/new", {**EVENT, "ends_at": f"{SOON:%Y-%m-%dT08:00}"})
    assert backwards.status_code == 400 and 'id="f-ends_at-error"' in backwards.text
    assert "The event must end after it starts." in backwards.text and "Scaling &lt;LLMs&gt;" in backwards.text
    no_csrf = await browser.client.post("/training/new", data=EVENT)
    assert no_csrf.status_code == 403
    made = await browser.submit("/training/new", EVENT)
    event_id = location_id(made, r"/training/([0-9a-f]{32})")
    event = training.get_event(session=session, actor=op, event_id=event_id)
    assert (event.title, event.seats, event.location, event.is_published) == ("Scaling <LLMs>", 30, "JSC, Jülich", True)
    assert event.starts_at == SOON.replace(hour=9, minute=0)
    form = (await browser.get(f"/training/{event_id}/edit")).text
    assert 'value="30"' in form and f'value="{SOON:%Y-%m-%dT09:00}"' in form
    changed = await browser.submit(f"/training/{event_id}/edit", {**EVENT, "seats": "40", "location": "online"})
    assert changed.status_code == 303
    session.expire_all()
    event = training.get_event(session=session, actor=op, event_id=event_id)
    assert (event.seats, event.location) == (40, "online")
    refused = await browser.submit(f"/training/{event_id}/edit", {**EVENT, "seats": "0"})
    assert refused.status_code == 400 and 'id="f-seats-error"' in refused.text and 'value="0"' in refused.text
    assert (await browser.get(f"/training/{'0' * 32}/edit")).status_code == 404


async def test_an_operator_adds_and_changes_a_catalogue_solution(portal, world, session):
    op = world.operator()
    session.commit()
    browser = await portal.as_(op)
    assert 'href="/catalogue/new"' in (await browser.get("/catalogue")).text
    entry = {"slug": "Bad Slug!", "name": "Medical QA", "summary": "Questions <b>doctors</b> ask",
             "languages": "de, en", "licence": "Apache-2.0", "model": ""}
    bad = await browser.submit("/catalogue/new", entry)
    assert bad.status_code == 400 and 'id="f-slug-error"' in bad.text and 'value="Bad Slug!"' in bad.text
    assert "Questions &lt;b&gt;doctors&lt;/b&gt; ask" in bad.text and 'value="de, en"' in bad.text
    unknown = await browser.submit("/catalogue/new", {**entry, "slug": "med-qa", "model": "no-such-model"})
    assert unknown.status_code == 400 and 'id="f-model-error"' in unknown.text
    assert 'value="no-such-model"' in unknown.text
    made = await browser.submit("/catalogue/new", {**entry, "slug": "med-qa", "is_published": "1"})
    assert made.status_code == 303 and made.headers["location"] == "/catalogue/med-qa"
    solution = catalogue.get_solution(session=session, actor=op, slug="med-qa")
    assert (solution.name, solution.languages, solution.licence, solution.is_published) == (
        "Medical QA", ["de", "en"], "Apache-2.0", True)
    again = await browser.submit("/catalogue/new", {**entry, "slug": "med-qa"})
    assert again.status_code == 400 and 'id="f-slug-error"' in again.text
    form = (await browser.get("/catalogue/med-qa/edit")).text
    assert 'value="de, en"' in form and 'value="Medical QA"' in form
    emptied = await browser.submit("/catalogue/med-qa/edit", {**entry, "name": ""})
    assert emptied.status_code == 400 and 'id="f-name-error"' in emptied.text
    changed = await browser.submit("/catalogue/med-qa/edit", {**entry, "name": "Medical QA 2", "languages": "fr"})
    assert changed.status_code == 303
    session.expire_all()
    solution = catalogue.get_solution(session=session, actor=op, slug="med-qa")
    assert (solution.name, solution.languages, solution.is_published) == ("Medical QA 2", ["fr"], False)


def _requests(session, project_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Application).where(Application.project_id == project_id))


async def test_a_pi_asks_for_a_top_up_and_an_operator_sees_it(portal, world, seeded, session):
    pia, member, op = world.user("pia"), world.user("max"), world.operator()
    lab = world.project(member, pi=pia)
    session.commit()
    as_pia = await portal.as_(pia)
    page = (await as_pia.get(f"/projects/{lab.id}")).text
    assert "Ask for a renewal" in page and "Ask for a top-up" in page and '<option value="fast-lane"' in page
    nothing = await as_pia.submit(f"/projects/{lab.id}/requests", {"kind": "top_up", "call": ""},
                                  page=f"/projects/{lab.id}")
    assert nothing.status_code == 400 and 'id="f-call-error"' in nothing.text and _requests(session, lab.id) == 0
    unknown = await as_pia.submit(f"/projects/{lab.id}/requests", {"kind": "top_up", "call": "no-such-call"},
                                  page=f"/projects/{lab.id}")
    assert unknown.status_code == 400 and 'id="f-call-error"' in unknown.text
    odd = await as_pia.submit(f"/projects/{lab.id}/requests", {"kind": "everything", "call": "fast-lane"},
                              page=f"/projects/{lab.id}")
    assert odd.status_code == 400 and 'id="f-kind-error"' in odd.text and _requests(session, lab.id) == 0
    made = await as_pia.submit(f"/projects/{lab.id}/requests", {"kind": "top_up", "call": "fast-lane"},
                               page=f"/projects/{lab.id}")
    application_id = location_id(made, r"/applications/([0-9a-f]{32})/edit/proposal")
    found = session.get(Application, application_id)
    assert (found.kind, found.project_id, found.applicant_id, found.state) == ("top_up", lab.id, pia.user_id, "draft")
    assert found.title == f"Top-up of project {lab.name}"
    form = (await as_pia.get(f"/applications/{application_id}/edit/proposal")).text
    assert "Top-up of" in form
    as_op = await portal.as_(op)
    listed = (await as_op.get("/operator/applications")).text
    assert "<td>Top-up</td>" in listed
    assert "Top-up of" in (await as_op.get(f"/operator/applications/{application_id}")).text


async def test_only_the_projects_pi_may_ask_for_more(portal, world, seeded, session):
    pia, member, other_pi, op = world.user("pia"), world.user("max"), world.user("olga"), world.operator()
    lab = world.project(member, pi=pia)
    world.project(pi=other_pi)
    session.commit()
    as_member = await portal.as_(member)
    assert "Ask for a renewal" not in (await as_member.get(f"/projects/{lab.id}")).text
    token = csrf_of((await as_member.get("/account")).text)
    refused = await as_member.client.post(f"/projects/{lab.id}/requests",
                                          data={"kind": "renewal", "call": "fast-lane", "csrf_token": token})
    assert refused.status_code == 403
    as_other = await portal.as_(other_pi)
    token = csrf_of((await as_other.get("/account")).text)
    foreign = await as_other.client.post(f"/projects/{lab.id}/requests",
                                         data={"kind": "top_up", "call": "fast-lane", "csrf_token": token})
    assert foreign.status_code == 404 and lab.name not in foreign.text
    as_op = await portal.as_(op)
    token = csrf_of((await as_op.get("/account")).text)
    operator = await as_op.client.post(f"/projects/{lab.id}/requests",
                                       data={"kind": "top_up", "call": "fast-lane", "csrf_token": token})
    assert operator.status_code == 403
    no_csrf = await as_member.client.post(f"/projects/{lab.id}/requests", data={"kind": "renewal", "call": "fast-lane"})
    assert no_csrf.status_code == 403
    assert _requests(session, lab.id) == 0
