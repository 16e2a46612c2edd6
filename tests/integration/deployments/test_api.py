"""/api/v1/deployments through the ASGI app: operators only; create, list, show, scale, delete; refusals."""

from __future__ import annotations

from tests.integration.compute.conftest import grant

BODY = {"model": "smollm2-135m-instruct", "engine": "llama-cpp", "partition": "local", "min_replicas": 1,
        "max_replicas": 2, "walltime": 30}


async def test_operators_manage_deployments_and_no_one_else_may(api, session, world):
    operator, alice = world.operator(), world.user("alice")
    lab = world.project(alice)
    grant(session, lab, partition="local")
    as_op, as_alice = api.as_(operator), api.as_(alice)
    body = BODY | {"name": "chat-a", "project": lab.name, "aliases": ["chat-latest"]}
    for method, path, kw in [("post", "/api/v1/deployments", {"json": body}), ("get", "/api/v1/deployments", {}),
                             ("get", "/api/v1/deployments/chat-a", {}),
                             ("post", "/api/v1/deployments/chat-a/scale", {"json": {"max_replicas": 3}}),
                             ("delete", "/api/v1/deployments/chat-a", {})]:
        refused = await getattr(as_alice, method)(path, **kw)
        assert refused.status_code == 403, (path, refused.text)
        assert (await getattr(api.anonymous, method)(path, **kw)).status_code == 401
    made = await as_op.post("/api/v1/deployments", json=body)
    assert made.status_code == 201, made.text
    d = made.json()
    assert (d["name"], d["engine"], d["project"], d["state"], d["aliases"], d["replicas"]) == (
        "chat-a", "llama-cpp", lab.name, "active", ["chat-latest"], [])
    assert [x["name"] for x in (await as_op.get("/api/v1/deployments")).json()] == ["chat-a"]
    scaled = await as_op.post("/api/v1/deployments/chat-a/scale", json={"min_replicas": 0, "max_replicas": 3})
    assert (scaled.json()["min_replicas"], scaled.json()["max_replicas"]) == (0, 3)
    bad = await as_op.post("/api/v1/deployments/chat-a/scale", json={"min_replicas": 4})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "min_replicas"
    # taken: as a deployment, and as a model or alias of the gateway
    for name in ("chat-a", "chat-latest"):
        again = await as_op.post("/api/v1/deployments", json=body | {"name": name, "aliases": []})
        assert again.status_code == 409, again.text
    gone = await as_op.delete("/api/v1/deployments/chat-a")  # no replica: gone at once
    assert gone.status_code == 200 and gone.json() == {"name": "chat-a", "state": "deleted", "draining": 0}
    assert (await as_op.get("/api/v1/deployments/chat-a")).status_code == 404
    # its gateway model went with it: the name is free again
    again = await as_op.post("/api/v1/deployments", json=body | {"name": "chat-latest", "aliases": []})
    assert again.status_code == 201, again.text


async def test_refusals_name_the_field_and_say_why(api, session, world):
    operator = world.operator()
    lab = world.project()
    as_op = api.as_(operator)
    body = BODY | {"name": "chat-b", "project": lab.name}
    for change, status, param, words in [
        ({"engine": "tgi"}, 400, "engine", "unknown engine 'tgi'"),
        ({"partition": "h100"}, 400, "partition", "unknown partition 'h100'"),
        ({"gpus_per_replica": 9}, 400, "gpus_per_replica", "has 4 GPUs per node"),
        ({"walltime": 100000}, 400, "walltime", "allows at most 1440 minutes"),
        ({"min_replicas": 3, "max_replicas": 2}, 400, "min_replicas", "is more than --max-replicas"),
        ({"project": "nope"}, 404, "project", "no project 'nope'"),
        ({"model": "/nowhere/model.gguf"}, 400, "model", "no weights at '/nowhere/model.gguf'"),
        ({"model": "/nowhere/model.bin"}, 400, "model", "is not a .gguf file"),
        ({"engine": "vllm"}, 400, "gpus_per_replica", "at least one GPU"),
        ({"engine": "command"}, 400, "command", "needs --command"),
        ({"name": "a/b"}, 400, "name", "is not a deployment name"),
    ]:
        response = await as_op.post("/api/v1/deployments", json=body | change)
        assert response.status_code == status, (change, response.text)
        error = response.json()["error"]
        assert error["param"] == param and words in error["message"], (change, error)
    assert (await as_op.get("/api/v1/deployments")).json() == []
