"""The public pages (issue 14, item 10): calls, the catalogue and training events are visible without
signing in, as the EuroHPC access portal shows its calls; only what is published, and nothing to act on
(applying and registering ask the visitor to sign in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jaif.catalogue import service as catalogue
from jaif.training import service as training


async def test_visitors_see_open_calls_published_solutions_and_events_and_are_asked_to_sign_in(
        api, seeded, world, session):
    operator = world.operator()
    catalogue.create_solution(session=session, actor=operator, slug="climate", name="Climate LLM",
                              summary="Answers about climate.", is_published=True)
    catalogue.create_solution(session=session, actor=operator, slug="secret-draft", name="Secret Draft",
                              summary="Not yet.", is_published=False)
    starts = datetime.now(UTC) + timedelta(days=10)
    event = training.create_event(session=session, actor=operator, title="GPU bootcamp", starts_at=starts,
                                  ends_at=starts + timedelta(hours=4), seats=10)
    hidden = training.create_event(session=session, actor=operator, title="Hidden workshop", starts_at=starts,
                                   ends_at=starts + timedelta(hours=4), seats=10, is_published=False)
    session.commit()
    visitor = api.anonymous

    calls = await visitor.get("/apply")
    assert calls.status_code == 200, calls.text
    assert "Playground" in calls.text and "Sign in to apply to Playground" in calls.text
    assert 'action="/apply/' not in calls.text  # nothing a visitor could submit
    started = await visitor.post("/apply/playground", data={})
    assert started.status_code in (303, 403) and "/applications/" not in started.headers.get("location", "")

    listed = await visitor.get("/catalogue")
    assert listed.status_code == 200 and "Climate LLM" in listed.text and "Secret Draft" not in listed.text
    assert (await visitor.get("/catalogue/climate")).status_code == 200
    assert (await visitor.get("/catalogue/secret-draft")).status_code == 404

    events = await visitor.get("/training")
    assert events.status_code == 200 and "GPU bootcamp" in events.text and "Hidden workshop" not in events.text
    page = await visitor.get(f"/training/{event.id}")
    assert page.status_code == 200 and f'href="/login?next=/training/{event.id}"' in page.text
    assert f'action="/training/{event.id}/register"' not in page.text
    assert (await visitor.get(f"/training/{hidden.id}")).status_code == 404
    assert (await visitor.post(f"/training/{event.id}/register", data={})).status_code in (303, 403)
    # the main navigation offers the public pages
    assert 'href="/catalogue"' in listed.text and 'href="/training"' in listed.text
