"""The catalogue's portal pages."""

from __future__ import annotations

from jaif.bootstrap import initialise
from jaif.catalogue import service


async def test_the_built_in_models_model_cards_are_on_the_pages(portal, world, session):
    initialise(session=session, builtin_models=True)
    browser = await portal.as_(world.user("alice"))
    listing = await browser.get("/catalogue")
    assert listing.status_code == 200
    assert "SmolLM2-135M-Instruct" in listing.text and "all-MiniLM-L6-v2" in listing.text
    card = await browser.get("/catalogue/all-minilm-l6-v2")
    assert card.status_code == 200
    for shown in ("Apache-2.0", "English", "256 word pieces", "<code>default-embedding</code>", "embeddings.create"):
        assert shown in card.text, shown
    found = await browser.get("/catalogue", params={"q": "sentence"})
    assert "all-MiniLM-L6-v2" in found.text and "SmolLM2" not in found.text


async def test_drafts_are_not_shown_to_users(portal, world, session):
    op = world.operator()
    service.create_solution(session=session, actor=op, slug="secret-model", name="Secret model")
    as_alice, as_op = await portal.as_(world.user("alice")), await portal.as_(op)
    assert (await as_alice.get("/catalogue/secret-model")).status_code == 404
    assert "Secret model" not in (await as_alice.get("/catalogue")).text
    draft = await as_op.get("/catalogue/secret-model")
    assert draft.status_code == 200 and "Draft" in draft.text and "not served by this factory" in draft.text
