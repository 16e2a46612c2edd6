"""The operator console through its pages: calls (a bad field kept beside its error, then saved),
a Fast Lane application through technical review (a reviewer with a conflict of interest refused with
the reason, the review, the decision and its allocation), allocations and organisations."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from jaif.allocations.models import Allocation
from jaif.calls.models import AccessCall
from tests.integration.pages.test_apply import fill, start

NEW_CALL = {
    "slug": "ai-startups", "name": "AI start-ups", "kind": "custom", "description": "For young companies",
    "opens_at": "", "closes_at": "", "cutoffs": "", "offered_gpu_hours": "local = 200000",
    "offered_tokens": "1,000,000,000", "max_gpu_hours": "10000", "min_gpu_hours": "", "max_tokens": "50000000",
    "durations_months": "1, 3", "sector_startup": "1", "sector_sme": "1", "eligible_countries": "",
    "review_mode": "technical", "target_days_to_access": "5", "is_active": "1",
}


async def test_calls_are_made_and_changed_with_errors_beside_their_fields(portal, world, seeded, session):
    op = world.operator()
    browser = await portal.as_(op)
    bad = await browser.submit("/operator/calls/new", NEW_CALL | {"durations_months": "1, three"})
    assert bad.status_code == 400
    assert 'id="f-durations_months-error"' in bad.text and 'value="1, three"' in bad.text
    assert 'id="f-sector_startup" name="sector_startup" type="checkbox" value="1" checked' in bad.text
    ids = re.findall(r'\bid="([^"]+)"', bad.text)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)  # each id once (issue 14)
    # A partition this site lacks (issue 14, item 1): the error beside the field, what was typed kept.
    elsewhere = await browser.submit("/operator/calls/new", NEW_CALL | {"offered_gpu_hours": "booster = 5"})
    assert elsewhere.status_code == 400 and 'id="f-offered_gpu_hours-error"' in elsewhere.text
    assert "This site has no partition &#39;booster&#39;; it has local." in elsewhere.text
    assert "booster = 5</textarea>" in elsewhere.text and "This site&#39;s partitions: local." in elsewhere.text
    made = await browser.submit("/operator/calls/new", NEW_CALL)
    assert made.status_code == 303, made.text[:2000]
    call = session.scalar(select(AccessCall).where(AccessCall.slug == "ai-startups"))
    assert call.eligible_sectors == ["startup", "sme"] and call.durations_months == [1, 3]
    edit = (await browser.get("/operator/calls/ai-startups")).text
    assert "local = 200000" in edit and 'value="1, 3"' in edit
    closed = await browser.submit("/operator/calls/ai-startups", NEW_CALL | {"is_active": ""})
    assert closed.status_code == 303
    session.expire_all()
    assert session.scalar(select(AccessCall.is_active).where(AccessCall.slug == "ai-startups")) is False
    console = (await browser.get("/operator")).text
    assert "Time to access per call" in console and "AI start-ups" in console


async def test_an_operator_runs_a_fast_lane_application_through_technical_review(portal, world, seeded, session):
    alice, op = world.user("alice"), world.operator()
    rita, tom = world.user("rita", role="reviewer"), world.user("tom", role="reviewer")
    as_alice = await portal.as_(alice)
    app_id = await start(as_alice, "fast-lane")
    await fill(as_alice, app_id, project_name="alice-fast", call_months="3")
    team = await as_alice.submit(f"/applications/{app_id}/edit/team", {
        "organisation_choice": "new", "org_name": "Uni alice-fast", "org_sector": "academia", "org_country": "DE",
        "team": tom.email})
    assert team.status_code == 303
    submitted = await as_alice.submit(f"/applications/{app_id}/submit", {}, page=f"/applications/{app_id}/edit/submit")
    assert submitted.status_code == 303

    as_op = await portal.as_(op)
    listed = (await as_op.get("/operator/applications?call=fast-lane&state=submitted")).text
    assert f"/operator/applications/{app_id}" in listed
    page = f"/operator/applications/{app_id}"
    refused = await as_op.submit(f"{page}/reviewers", {"reviewer_email": tom.email, "stage": "technical"}, page=page)
    assert refused.status_code == 409
    text = html.unescape(refused.text)
    assert 'id="f-reviewer_email-error"' in text and "Conflict of interest" in text
    assert f"{tom.email} is in the application's team" in text and f'<option value="{tom.email}" selected>' in text
    # The reviewer pool: everyone with the reviewer role, picked from a list (issue 14, item 3).
    assert f'<option value="{rita.email}">Rita ({rita.email})</option>' in text and alice.email not in text.split(
        'id="f-reviewer_email"')[1].split("</select>")[0]

    # A reviewer may decline, with a reason (issue 14, item 4): the error beside the field, then done.
    kim = world.user("kim", role="reviewer")
    asked = await as_op.submit(f"{page}/reviewers", {"reviewer_email": kim.email, "stage": "technical"}, page=page)
    assert asked.status_code == 303
    as_kim = await portal.as_(kim)
    kims = _review_id(await as_kim.get("/review"))
    empty = await as_kim.submit(f"/review/{kims}/decline", {"reason": " ", "conflict": "1"}, page=f"/review/{kims}")
    assert empty.status_code == 400 and 'id="f-reason-error"' in empty.text
    declined = await as_kim.submit(f"/review/{kims}/decline", {"reason": "I advise their lab", "conflict": "1"},
                                   page=f"/review/{kims}")
    assert declined.status_code == 303 and 'href="/review/' not in (await as_kim.get("/review")).text
    assigned = await as_op.submit(f"{page}/reviewers", {"reviewer_email": rita.email, "stage": "technical"}, page=page)
    assert assigned.status_code == 303
    as_rita = await portal.as_(rita)
    review_id = _review_id(await as_rita.get("/review"))
    empty = await as_rita.submit(f"/review/{review_id}", {"comment": "Good plan"})
    assert empty.status_code == 400 and "Choose a score" in empty.text and "Good plan</textarea>" in empty.text
    reviewed = await as_rita.submit(f"/review/{review_id}", {"score": "4", "comment": "Good plan"})
    assert reviewed.status_code == 303

    # The operator adjusts the amounts at decision time (issue 14, item 4): the form shows what was asked.
    form = (await as_op.get(page)).text
    assert 'id="f-grant_gpu_hours.booster" name="grant_gpu_hours.booster" type="text" value="1000"' in form
    grant = {"decision": "accept", "comment": "Welcome", "allocate": "1", "grant_gpu_hours.booster": "600",
             "grant_tokens": "50,000", "grant_months": "2"}
    wrong = await as_op.submit(f"{page}/decision", grant | {"grant_tokens": "lots"}, page=page)
    assert wrong.status_code == 400 and 'id="f-grant_tokens-error"' in wrong.text and 'value="lots"' in wrong.text
    decided = await as_op.submit(f"{page}/decision", grant, page=page)
    assert decided.status_code == 303
    done = (await as_op.get(page)).text
    assert "Allocated" in done and "by " + rita.email in done
    allocations = session.scalars(select(Allocation).where(Allocation.application_id == app_id)).all()
    assert sorted((a.resource, a.amount) for a in allocations) == [("gpu_hours", 600.0), ("tokens", 50000.0)]


def _review_id(queue) -> str:
    return queue.text.split('href="/review/')[1].split('"')[0]


async def test_allocations_and_organisations_in_the_console(portal, world, seeded, session):
    op, alice = world.operator(), world.user("alice")
    lab = world.project(pi=alice)
    session.commit()
    browser = await portal.as_(op)
    bad = await browser.submit("/operator/allocations", {"project_name": lab.name, "resource": "gpu_hours",
                                                         "partition": "booster", "amount": "-5", "days": "30"})
    assert bad.status_code == 400 and 'id="f-amount-error"' in bad.text and 'value="-5"' in bad.text
    elsewhere = await browser.submit("/operator/allocations", {"project_name": lab.name, "resource": "gpu_hours",
                                                               "partition": "booster", "amount": "5", "days": "30"})
    assert elsewhere.status_code == 400 and 'id="f-partition-error"' in elsewhere.text
    assert "This site has no partition &#39;booster&#39;" in elsewhere.text and 'value="booster"' in elsewhere.text
    unknown = await browser.submit("/operator/allocations", {"project_name": "nope", "resource": "tokens",
                                                             "partition": "", "amount": "5", "days": "30"})
    assert unknown.status_code == 400 and 'id="f-project_name-error"' in unknown.text
    made = await browser.submit("/operator/allocations", {"project_name": lab.name, "resource": "tokens",
                                                          "partition": "", "amount": "5000", "days": "30"})
    assert made.status_code == 303
    listed = (await browser.get(f"/operator/allocations?project={lab.name}")).text
    allocation = session.scalar(select(Allocation).where(Allocation.project_id == lab.id))
    assert f"/operator/allocations/{allocation.id}/revoke" in listed
    revoked = await browser.submit(f"/operator/allocations/{allocation.id}/revoke", {}, page="/operator/allocations")
    assert revoked.status_code == 303
    session.refresh(allocation)
    assert allocation.status == "revoked"

    org_bad = await browser.submit("/operator/organisations", {"name": "Uni Bonn", "sector": "", "country": "DE"})
    assert org_bad.status_code == 400 and 'id="f-sector-error"' in org_bad.text and 'value="Uni Bonn"' in org_bad.text
    org = await browser.submit("/operator/organisations", {"name": "Uni Bonn", "sector": "academia", "country": "de"})
    assert org.status_code == 303
    assert "Uni Bonn" in (await browser.get("/operator/organisations")).text
