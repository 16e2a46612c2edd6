"""/api/v1/solutions through the ASGI app."""

from __future__ import annotations

from jaif.inference import service as inference

CARD = {
    "slug": "climate-llm",
    "name": "Climate assistant",
    "domain": "climate",
    "licence": "Apache-2.0",
    "intended_use": "Explaining climate model output.",
    "limitations": "Not a forecast.",
    "languages": ["English", "German"],
    "model": "climate-chat",
}


async def test_operators_curate_and_users_read_published_solutions(api, world, session):
    inference.add_model(
        session=session, name="llama-climate", upstreams=["http://gpu:8000/v1"], aliases=["climate-chat"]
    )
    session.commit()
    as_alice, as_op = api.as_(world.user("alice")), api.as_(world.operator())
    assert (await as_alice.post("/api/v1/solutions", json=CARD)).status_code == 403
    created = await as_op.post("/api/v1/solutions", json=CARD)
    assert created.status_code == 201, created.text
    assert created.json()["model"] == {
        "name": "llama-climate",
        "kind": "chat",
        "context_length": 4096,
        "aliases": ["climate-chat"],
        "served": True,
        "state": None,  # not a deployment
        "estimated_ready_s": None,
    }
    assert (await as_alice.get("/api/v1/solutions/climate-llm")).status_code == 404
    assert (await as_op.get("/api/v1/solutions/climate-llm")).status_code == 200
    assert (await as_alice.patch("/api/v1/solutions/climate-llm", json={"is_published": True})).status_code == 403
    published = await as_op.patch("/api/v1/solutions/climate-llm", json={"is_published": True})
    assert published.json()["is_published"] is True
    listed = await as_alice.get("/api/v1/solutions", params={"language": "German"})
    assert [s["slug"] for s in listed.json()] == ["climate-llm"]
    card = (await as_alice.get("/api/v1/solutions/climate-llm")).json()
    assert card["licence"] == "Apache-2.0" and card["limitations"] == "Not a forecast."


async def test_bad_input(api, world):
    as_op = api.as_(world.operator())
    assert (await as_op.post("/api/v1/solutions", json=CARD | {"slug": "Not A Slug"})).status_code == 400
    unknown = await as_op.post("/api/v1/solutions", json=CARD | {"model": "no-such-model"})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "model"
    assert (await as_op.post("/api/v1/solutions", json=CARD | {"model": None})).status_code == 201
    assert (await as_op.post("/api/v1/solutions", json=CARD | {"model": None})).status_code == 409
    assert (await as_op.patch("/api/v1/solutions/climate-llm", json={"slug": "other"})).status_code == 400
    assert (await as_op.patch("/api/v1/solutions/nope", json={"name": "x"})).status_code == 404
    assert (await api.anonymous.get("/api/v1/solutions")).status_code == 401
