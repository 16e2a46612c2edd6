"""Who sees which page: another project's pages, keys, usage and applications do not exist for a user
(404), the operator console is for operators (403), a reviewer sees only the reviews assigned to them,
and a member who is not a principal investigator cannot make keys."""

from __future__ import annotations

import pytest

from jaif.applications import reviews
from jaif.applications import service as applications
from jaif.applications.schemas import DraftIn
from jaif.calls.seed import seed_calls

PAGES_OF_A_PROJECT = ["/projects/{p}", "/projects/{p}/keys", "/usage?project={p}"]


@pytest.mark.parametrize("path", ["/applications", "/usage", "/review", "/operator", "/projects/x/keys"])
async def test_pages_send_visitors_to_sign_in(api, path):
    response = await api.anonymous.get(path)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


async def test_another_projects_pages_do_not_exist(portal, world):
    alice, bob = world.user("alice"), world.user("bob")
    lab = world.project(pi=alice)
    world.session.commit()
    as_bob = await portal.as_(bob)
    for path in PAGES_OF_A_PROJECT:
        response = await as_bob.get(path.format(p=lab.id))
        assert response.status_code == 404, path
        assert lab.name not in response.text
    created = await as_bob.client.post(f"/projects/{lab.id}/keys", data={"name": "mine", "csrf_token": "x"})
    assert created.status_code == 403  # the form's token is wrong: refused before anything else
    page = (await as_bob.get("/usage")).text
    assert lab.name not in page
    as_alice = await portal.as_(alice)
    for path in PAGES_OF_A_PROJECT:
        assert (await as_alice.get(path.format(p=lab.id))).status_code == 200, path


async def test_keys_of_another_project_cannot_be_made_or_revoked(portal, world):
    alice, bob = world.user("alice"), world.user("bob")
    lab, own = world.project(pi=alice), world.project(pi=bob)
    world.session.commit()
    as_bob = await portal.as_(bob)
    made = await as_bob.submit(f"/projects/{lab.id}/keys", {"name": "sneaky"}, page=f"/projects/{own.id}/keys")
    assert made.status_code == 404
    revoked = await as_bob.submit(f"/projects/{lab.id}/keys/{'0' * 32}/revoke", {}, page=f"/projects/{own.id}/keys")
    assert revoked.status_code == 404


async def test_a_member_sees_the_keys_page_but_only_a_pi_makes_keys(portal, world):
    pia, max_ = world.user("pia"), world.user("max")
    lab = world.project(max_, pi=pia)
    world.session.commit()
    as_max = await portal.as_(max_)
    page = await as_max.get(f"/projects/{lab.id}/keys")
    assert page.status_code == 200 and "principal investigators make and revoke its keys" in page.text
    assert pia.email in page.text and "Create key" not in page.text
    made = await as_max.submit(f"/projects/{lab.id}/keys", {"name": "mine"})
    assert made.status_code == 403 and "principal investigators" in made.text


async def test_another_users_application_does_not_exist(portal, world):
    seed_calls(world.session)
    alice, bob = world.user("alice"), world.user("bob")
    draft = applications.create_draft(session=world.session, actor=alice, data=DraftIn(call_id="playground"))
    world.session.commit()
    as_bob = await portal.as_(bob)
    for path in (f"/applications/{draft.id}", f"/applications/{draft.id}/edit/proposal",
                 f"/applications/{draft.id}/edit/submit"):
        assert (await as_bob.get(path)).status_code == 404, path
    saved = await as_bob.submit(f"/applications/{draft.id}/edit/proposal", {"title": "mine now"}, page="/apply")
    assert saved.status_code == 404
    assert draft.id not in (await as_bob.get("/applications")).text


async def test_the_console_is_for_operators(portal, world):
    bob = world.user("bob", role="reviewer")
    world.session.commit()
    as_bob = await portal.as_(bob)
    for path in ("/operator", "/operator/calls", "/operator/applications", "/operator/allocations",
                 "/operator/organisations", "/operator/calls/new"):
        assert (await as_bob.get(path)).status_code == 403, path
    home = (await as_bob.get("/")).text
    assert 'href="/review"' in home and 'href="/operator"' not in home


async def test_a_reviewer_sees_only_reviews_assigned_to_them(portal, world):
    seed_calls(world.session)
    alice, op = world.user("alice"), world.operator()
    rita, rolf = world.user("rita", role="reviewer"), world.user("rolf", role="reviewer")
    draft = applications.create_draft(session=world.session, actor=alice, data=DraftIn(call_id="fast-lane"))
    draft.state = "submitted"  # straight to the review: the submission itself is tested elsewhere
    world.session.flush()
    review = reviews.assign(session=world.session, actor=op, mailer=None, application_id=draft.id,
                            reviewer_email=rita.email, stage="technical")
    world.session.commit()
    as_rolf = await portal.as_(rolf)
    assert (await as_rolf.get(f"/review/{review.id}")).status_code == 404
    assert (await as_rolf.get(f"/applications/{draft.id}")).status_code == 404
    assert draft.id not in (await as_rolf.get("/review")).text
    as_rita = await portal.as_(rita)
    assert f"/review/{review.id}" in (await as_rita.get("/review")).text
    assert (await as_rita.get(f"/review/{review.id}")).status_code == 200
