"""The support desk's portal pages, driven like a browser (session cookie, CSRF token from the form)."""

from __future__ import annotations

import re

from tests.support.portal import csrf_of


def request_id_of(response) -> str:
    assert response.status_code == 303, response.text[:500]
    found = re.fullmatch(r"/support/([0-9a-f]{32})", response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


async def test_pages_need_a_signed_in_user(api):
    response = await api.anonymous.get("/support")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/support"


async def test_a_form_with_bad_input_keeps_what_was_typed_and_names_the_field(portal, world):
    alice = world.user("alice")
    lab = world.project(alice)
    browser = await portal.as_(alice)
    typed = {"category": "scaling", "project_id": lab.id, "subject": "  ", "body": "NCCL <timeout> on 64 nodes"}
    response = await browser.submit("/support/new", typed)
    assert response.status_code == 400
    page = response.text
    assert 'id="f-subject-error"' in page and "Give your request a subject." in page
    assert 'aria-invalid="true"' in page and 'aria-describedby="f-subject-error"' in page
    assert "NCCL &lt;timeout&gt; on 64 nodes</textarea>" in page
    assert '<option value="scaling" selected>' in page and f'<option value="{lab.id}" selected>' in page
    too_long = await browser.submit("/support/new", typed | {"subject": "x" * 301})
    assert too_long.status_code == 400 and "at most 300 characters" in too_long.text
    assert 'value="' + "x" * 301 + '"' in too_long.text


async def test_ask_answer_and_close_through_the_pages(portal, world):
    alice, op = world.user("alice"), world.operator()
    as_alice, as_op = await portal.as_(alice), await portal.as_(op)
    asked = await as_alice.submit(
        "/support/new", {"category": "inference", "subject": "Streaming stops", "body": "After 30 s"}
    )
    request_id = request_id_of(asked)
    page = await as_alice.get(f"/support/{request_id}")
    assert "Streaming stops" in page.text and "Your request is with the support team" in page.text
    assert "Streaming stops" in (await as_op.get("/support")).text

    answered = await as_op.submit(
        f"/support/{request_id}/replies", {"body": "Which client?"}, page=f"/support/{request_id}"
    )
    assert answered.status_code == 303
    noted = await as_op.submit(
        f"/support/{request_id}/replies",
        {"body": "Proxy timeout, I bet", "internal": "1"},
        page=f"/support/{request_id}",
    )
    assert noted.status_code == 303
    assigned = await as_op.submit(
        f"/support/{request_id}/assign", {"assignee_id": op.user_id}, page=f"/support/{request_id}"
    )
    assert assigned.status_code == 303

    seen_by_alice = (await as_alice.get(f"/support/{request_id}")).text
    assert "Which client?" in seen_by_alice and "Proxy timeout" not in seen_by_alice
    seen_by_op = (await as_op.get(f"/support/{request_id}")).text
    assert "Proxy timeout, I bet" in seen_by_op and "Internal note" in seen_by_op

    closed = await as_alice.submit(f"/support/{request_id}/status", {"status": "closed"}, page=f"/support/{request_id}")
    assert closed.status_code == 303
    after = (await as_alice.get(f"/support/{request_id}")).text
    assert "This request is closed" in after and "Reopen the request" in after


async def test_an_empty_reply_is_refused_next_to_the_field_keeping_the_internal_box(portal, world):
    alice, op = world.user("alice"), world.operator()
    as_alice, as_op = await portal.as_(alice), await portal.as_(op)
    request_id = request_id_of(
        await as_alice.submit("/support/new", {"category": "other", "subject": "Hello", "body": "Question"})
    )
    refused = await as_op.submit(
        f"/support/{request_id}/replies", {"body": " ", "internal": "1"}, page=f"/support/{request_id}"
    )
    assert refused.status_code == 400
    assert 'id="f-body-error"' in refused.text and 'name="internal" value="1" checked' in refused.text


async def test_another_users_request_page_does_not_exist_for_them(portal, world):
    alice, mallory = world.user("alice"), world.user("mallory")
    as_alice, as_mallory = await portal.as_(alice), await portal.as_(mallory)
    request_id = request_id_of(
        await as_alice.submit("/support/new", {"category": "data", "subject": "Private data", "body": "GDPR"})
    )
    assert (await as_mallory.get(f"/support/{request_id}")).status_code == 404
    assert "Private data" not in (await as_mallory.get("/support")).text
    token = csrf_of((await as_mallory.get("/support/new")).text)
    tried = await as_mallory.client.post(f"/support/{request_id}/replies", data={"body": "hi", "csrf_token": token})
    assert tried.status_code == 404
    assert "No replies yet." in (await as_alice.get(f"/support/{request_id}")).text
