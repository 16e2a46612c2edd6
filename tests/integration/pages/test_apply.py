"""Applying through the pages: the calls with who may apply, the form step by step (saved at every step,
bad input kept next to its error), submission (refused with the problem next to its field, or accepted
and allocated at once by the Playground call), and what the applicant sees afterwards."""

from __future__ import annotations

import html

from sqlalchemy import select

from jaif.access.models import User
from jaif.applications.models import Application
from jaif.db.base import utcnow
from tests.integration.pages.conftest import give_organisation, location_id
from tests.support.frontdoor import ABSTRACT

PROPOSAL = {"title": "Multilingual LLM for public services", "project_name": "", "domain": "language models",
            "abstract": ABSTRACT}


async def start(browser, call: str = "playground") -> str:
    started = await browser.submit(f"/apply/{call}", {}, page="/apply")
    return location_id(started, r"/applications/([0-9a-f]{32})/edit/proposal")


async def step(browser, app_id: str, name: str, data: dict, action: str = "next"):
    return await browser.submit(f"/applications/{app_id}/edit/{name}", {**data, "action": action})


async def fill(browser, app_id: str, *, project_name: str, gpu_hours: str = "1000", call_months: str = "2") -> None:
    for name, data in [
        ("proposal", PROPOSAL | {"project_name": project_name}),
        ("team", {"organisation_choice": "new", "org_name": f"Uni {project_name}", "org_sector": "academia",
                  "org_country": "de", "team": ""}),
        ("resources", {"gpu_hours.booster": gpu_hours, "requested_tokens": "100,000", "duration_months": call_months}),
        ("data", {"datasets": "Public EU legal texts"}),
        ("ai-act", {"ai_act_risk": "limited", "ai_act_notes": ""}),
    ]:
        saved = await step(browser, app_id, name, data)
        assert saved.status_code == 303, (name, saved.text[:1500])


async def test_the_calls_say_who_may_apply_and_whether_you_may(portal, world, seeded, session):
    alice = world.user("alice")
    give_organisation(session, alice, name="Acme Inc", country="US", sector="industry")
    browser = await portal.as_(alice)
    page = (await browser.get("/apply")).text
    assert "Playground" in page and "Fast Lane" in page and "Large Scale" in page
    assert "EU member states and countries associated to Horizon Europe" in page
    assert "Acme Inc may not apply" in page and "is based in US" in page


async def test_a_playground_application_waits_for_a_verified_address_and_a_confirmed_membership(
    portal, world, seeded, session, api
):
    """Issue 9, item 8: the Playground granted at once to an unverified address under an organisation the
    applicant had declared. Now it waits, says why, and is granted when the applicant asks again once an
    operator (or a confirmed member) has confirmed the membership."""
    alice = world.user("alice", verified=False)
    browser = await portal.as_(alice)
    app_id = await start(browser)
    await fill(browser, app_id, project_name="alice-llm")
    check = (await browser.get(f"/applications/{app_id}/edit/submit")).text
    assert "Your application is complete" in check
    submitted = await browser.submit(f"/applications/{app_id}/submit", {}, page=f"/applications/{app_id}/edit/submit")
    assert submitted.status_code == 303 and submitted.headers["location"] == f"/applications/{app_id}"
    status = html.unescape((await browser.get(f"/applications/{app_id}")).text)
    assert "has its allocations" not in status and "Submitted" in status
    assert "waits: the applicant's e-mail address" in status and "is not verified yet" in status
    assert "Ask for the automatic review again" in status
    assert "GPU-hours on booster" not in (await browser.get("/")).text

    user = session.get(User, alice.user_id)
    user.email_verified_at = utcnow()  # the link in the e-mail was opened
    session.commit()
    again = await browser.submit(f"/applications/{app_id}/automatic-review", {}, page=f"/applications/{app_id}")
    assert again.status_code == 303
    status = html.unescape((await browser.get(f"/applications/{app_id}")).text)
    assert "membership of Uni alice-llm is not confirmed yet" in status and "Not yet" in status
    assert "has its allocations" not in status

    session.refresh(user)
    operator = api.as_(world.operator())
    confirmed = await operator.post(f"/api/v1/organisations/{user.organisation_id}/members/confirm",
                                    json={"email": alice.email})
    assert confirmed.status_code == 200 and confirmed.json()["state"] == "confirmed", confirmed.text
    again = await browser.submit(f"/applications/{app_id}/automatic-review", {}, page=f"/applications/{app_id}")
    assert again.status_code == 303
    status = (await browser.get(f"/applications/{app_id}")).text
    assert "project alice-llm has its allocations" in status and "Allocated" in status
    home = (await browser.get("/")).text
    assert "alice-llm" in home and "GPU-hours on booster" in home and "Inference tokens" in home
    assert "0 of 1,000 GPU-hours used" in home and "0 of 100,000 tokens used" in home


async def test_bad_input_is_shown_next_to_its_field_kept_and_the_rest_saved(portal, world, seeded, session):
    alice = world.user("alice")
    browser = await portal.as_(alice)
    app_id = await start(browser)
    typed = {"gpu_hours.booster": "lots", "requested_tokens": "250000", "duration_months": "2"}
    refused = await step(browser, app_id, "resources", typed)
    assert refused.status_code == 400
    page = refused.text
    assert 'id="f-gpu_hours.booster-error"' in page and "Enter a number of GPU-hours" in page
    assert 'value="lots"' in page and 'aria-invalid="true"' in page
    session.expire_all()
    saved = session.scalar(select(Application).where(Application.id == app_id))
    assert saved.requested_tokens == 250000 and saved.duration_months == 2  # the valid fields are not lost


async def test_save_and_continue_stays_on_a_step_until_it_is_complete_and_within_the_call(portal, world, seeded,
                                                                                         session):
    """Issue 14 (form polish): *Save and continue* on an empty required step moved on without a word."""
    browser = await portal.as_(world.user("alice"))
    app_id = await start(browser)
    empty = await step(browser, app_id, "proposal", {"title": "", "project_name": "", "domain": "",
                                                     "abstract": "Too short."})
    assert empty.status_code == 400
    page = html.unescape(empty.text)
    assert 'aria-current="step">Proposal' in page
    assert 'id="f-title-error">Give the project a title.' in page and 'id="f-domain-error"' in page
    assert 'id="f-abstract-error">Describe the project in an abstract of at least 50 characters.' in page
    assert ">Too short.</textarea>" in page  # what was typed is kept
    # *Save draft* keeps an unfinished step as it is and stays there.
    kept = await step(browser, app_id, "proposal", {"title": "Half done", "domain": "", "abstract": ""}, "save")
    assert kept.status_code == 303 and kept.headers["location"].endswith("/edit/proposal")

    team = await step(browser, app_id, "team", {"organisation_choice": "", "team": ""})
    assert team.status_code == 400 and 'id="f-organisation_choice-error">Name the organisation' in team.text

    # Beyond the Playground's limits (5,000 GPU-hours, 10,000,000 tokens), no duration: each beside its field.
    over = await step(browser, app_id, "resources", {"gpu_hours.booster": "9000", "requested_tokens": "20000000",
                                                     "duration_months": ""})
    assert over.status_code == 400
    page = html.unescape(over.text)
    assert 'id="f-gpu_hours-error">This call grants at most 5000 GPU-hours.' in page
    assert '<fieldset id="f-gpu_hours" class="invalid"' in page and 'value="9000"' in page
    assert 'id="f-requested_tokens-error">This call grants at most 10000000 tokens.' in page
    assert 'id="f-duration_months-error">Choose how many months the project needs.' in page
    within = await step(browser, app_id, "resources", {"gpu_hours.booster": "1000", "requested_tokens": "20000",
                                                       "duration_months": "2"})
    assert within.status_code == 303 and within.headers["location"].endswith("/edit/data")

    personal = await step(browser, app_id, "data", {"datasets": "", "personal_data": "1"})
    assert personal.status_code == 400 and 'id="f-datasets-error"' in personal.text
    risk = await step(browser, app_id, "ai-act", {"ai_act_notes": ""})
    assert risk.status_code == 400 and 'id="f-ai_act_risk-error"' in risk.text
    assert '<fieldset id="f-ai_act_risk" class="invalid"' in risk.text


async def test_a_refused_submission_shows_the_step_with_the_problem_next_to_the_field(portal, world, seeded):
    alice = world.user("alice")
    browser = await portal.as_(alice)
    app_id = await start(browser)
    await fill(browser, app_id, project_name="too-much")
    # Playground grants at most 5,000: *Save draft* keeps the step as typed; submitting refuses it.
    over = await step(browser, app_id, "resources", {"gpu_hours.booster": "9000", "requested_tokens": "100,000",
                                                     "duration_months": "2"}, "save")
    assert over.status_code == 303
    refused = await browser.submit(f"/applications/{app_id}/submit", {}, page=f"/applications/{app_id}/edit/submit")
    assert refused.status_code == 400
    page = html.unescape(refused.text)
    assert 'aria-current="step">Resources' in page
    assert 'id="f-gpu_hours-error"' in page and "This call grants at most 5000 GPU-hours." in page
    assert '<fieldset id="f-gpu_hours" class="invalid"' in page  # the group is marked, red (issue 14)
    assert 'value="9000"' in page


async def test_drafts_autosave_through_the_draft_api_with_the_session(portal, world, seeded, session):
    alice = world.user("alice")
    browser = await portal.as_(alice)
    app_id = await start(browser)
    page = (await browser.get(f"/applications/{app_id}/edit/proposal")).text
    assert f'data-autosave="/api/v1/applications/{app_id}"' in page and "/static/autosave.js" in page
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    saved = await browser.client.patch(f"/api/v1/applications/{app_id}", json={"title": "Typed so far"},
                                       headers={"x-csrf-token": token})
    assert saved.status_code == 200, saved.text
    assert 'value="Typed so far"' in (await browser.get(f"/applications/{app_id}/edit/proposal")).text
    script = await browser.get("/static/autosave.js")
    assert script.status_code == 200 and "PATCH" in script.text


async def test_the_applicant_sees_the_decision_and_anonymous_reviews(portal, world, seeded, session):
    from jaif.applications import reviews, service
    from tests.support.services import actor_of

    alice, op = world.user("alice"), world.operator()
    reviewer = world.user("rita", role="reviewer")
    browser = await portal.as_(alice)
    app_id = await start(browser, "fast-lane")
    await fill(browser, app_id, project_name="alice-fast", call_months="3")
    submitted = await browser.submit(f"/applications/{app_id}/submit", {}, page=f"/applications/{app_id}/edit/submit")
    assert submitted.status_code == 303
    review = reviews.assign(session=session, actor=op, mailer=None, application_id=app_id,
                            reviewer_email=reviewer.email, stage="technical")
    reviews.submit_review(session=session, actor=reviewer, review_id=review.id, score=4, comment="Sound plan.")
    service.decide(session=session, actor=op, mailer=None, application_id=app_id, accept=False,
                   comment="Not this time.")
    session.commit()
    assert actor_of  # the world made its actors through it
    page = (await browser.get(f"/applications/{app_id}")).text
    assert "Rejected" in page and "Not this time." in page and "Sound plan." in page and "score 4 of 5" in page
    assert reviewer.email not in page


async def test_a_hostile_partition_name_is_escaped_in_the_form(portal, world, seeded, session):
    """Issue 9, item 10: a partition name went into the form through ``attrs|safe`` unescaped."""
    from markupsafe import escape

    from jaif.calls.models import AccessCall

    hostile = '"><script>alert(1)</script><x y="'
    call = session.scalar(select(AccessCall).where(AccessCall.slug == "playground"))
    call.offered_gpu_hours = {**call.offered_gpu_hours, hostile: 10.0}
    session.commit()
    browser = await portal.as_(world.user("alice"))
    app_id = await start(browser)
    page = (await browser.get(f"/applications/{app_id}/edit/resources")).text
    assert "<script>alert(1)</script>" not in page
    assert f'data-key="{escape(hostile)}"' in page
    assert f"GPU-hours on {escape(hostile)}" in page


async def test_no_list_of_the_factorys_organisations_for_visitors_or_applicants(portal, world, seeded, session, api):
    """Issue 9, item 8: sign-up listed every organisation to anonymous visitors (a customer list), and the
    application form listed them to anyone signed in."""
    from jaif.access.models import Organisation

    session.add(Organisation(name="Secret Customer GmbH", sector="industry", country="DE"))
    session.commit()
    signup = await api.anonymous.get("/signup")
    assert signup.status_code == 200 and "Secret Customer GmbH" not in signup.text
    assert (await api.anonymous.get("/api/v1/organisations")).status_code == 401
    bob = world.user("bob")
    give_organisation(session, bob, name="Bob's Own Lab")
    browser = await portal.as_(bob)
    app_id = await start(browser)
    team = (await browser.get(f"/applications/{app_id}/edit/team")).text
    assert "Bob&#39;s Own Lab (DE)" in team and "Secret Customer GmbH" not in team
    listed = await api.as_(bob).get("/api/v1/organisations")
    assert [o["name"] for o in listed.json()] == ["Bob's Own Lab"]


async def test_members_confirm_a_colleague_and_operators_register_domains_in_the_portal(portal, world, seeded,
                                                                                      session):
    from jaif.access.models import Organisation

    senior, junior, outsider = world.user("senior"), world.user("junior"), world.user("outsider")
    lab = give_organisation(session, senior, name="Portal Lab")
    now = utcnow()
    for actor, confirmed in ((senior, True), (junior, False)):
        user = session.get(User, actor.user_id)
        user.organisation_id, user.email_verified_at = lab.id, now
        user.organisation_confirmed_at = now if confirmed else None
    session.commit()
    url = f"/organisations/{lab.id}/members"

    pending = await portal.as_(junior)
    assert "Your membership is pending" in (await pending.get("/apply")).text
    assert (await pending.get(url)).status_code == 404
    assert (await (await portal.as_(outsider)).get(url)).status_code == 404

    browser = await portal.as_(senior)
    assert f'href="{url}"' in (await browser.get("/apply")).text
    page = (await browser.get(url)).text
    assert f"Confirm {junior.email}" in page and "Register a domain" not in page
    done = await browser.submit(f"{url}/confirm", {"email": junior.email}, page=url)
    assert done.status_code == 303
    page = (await browser.get(url)).text
    assert f"{junior.email} is confirmed as a member" in page and "confirmed by member" in page

    operator = await portal.as_(world.operator())
    assert f'href="{url}"' in (await operator.get("/operator/organisations")).text
    added = await operator.submit(f"/organisations/{lab.id}/domains", {"domain": "portal-lab.example",
                                                                       "action": "add"}, page=url)
    assert added.status_code == 303
    page = (await operator.get(url)).text
    assert "portal-lab.example is registered" in page and "<li>portal-lab.example" in page
    bad = await operator.submit(f"/organisations/{lab.id}/domains", {"domain": "no", "action": "add"}, page=url)
    assert bad.status_code == 303 and "Give a domain such as uni.example" in (await operator.get(url)).text
    session.expire_all()
    assert [d.domain for d in session.get(Organisation, lab.id).domains] == ["portal-lab.example"]
