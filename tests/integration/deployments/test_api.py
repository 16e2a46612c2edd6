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


async def test_the_operators_deployments_page_shows_replicas_load_rates_and_decisions(api, portal, session, world):
    from datetime import timedelta

    from jaif.db.base import utcnow
    from jaif.deployments import service
    from jaif.deployments.models import DeploymentReplica, ReplicaState
    from jaif.metering.models import UsageRecord

    operator, alice = world.operator(), world.user("alice")
    lab = world.project(alice)
    grant(session, lab, partition="local")
    made = await api.as_(operator).post("/api/v1/deployments", json=BODY | {"name": "chat-p", "project": lab.name,
                                                                            "min_replicas": 0})
    assert made.status_code == 201, made.text
    deployment = service.get_deployment(session=session, name="chat-p")
    replica = DeploymentReplica(deployment_id=deployment.id, state=ReplicaState.ready, reason="", scheduler="slurm",
                                job_id="4242", workdir="/tmp/none", node="gpu-node-7", port=8100)
    deployment.replicas.append(replica)
    service.record_event(session, deployment, "scale", "scale up 0 -> 1: 3 request(s) waiting")
    service.report_load(session, instance="gw-1", load={"chat-p": {"inflight": {replica.url: 3}, "held": 2,
                                                                    "last": utcnow().timestamp()}})
    session.add(UsageRecord(id="u-1", project_id=lab.id, api_key_id=None, model="chat-p", endpoint="chat.completions",
                            replica=replica.url, prompt_tokens=10, completion_tokens=120, total_tokens=130,
                            created_at=utcnow() - timedelta(seconds=5)))
    session.commit()
    page = await (await portal.as_(operator)).get("/operator/deployments")
    assert page.status_code == 200, page.text
    text = page.text
    assert 'href="/operator/deployments" aria-current="page"' in text
    assert "Slurm 4242" in text and "gpu-node-7:8100" in text and "state-ready" in text
    assert "<td>3</td>" in text and "<td>2.0</td>" in text  # in flight (every gateway); 120 tokens / 60 s
    assert "2 request(s) held for a replica" in text
    assert "scale up 0 -&gt; 1: 3 request(s) waiting" in text
    refused = await (await portal.as_(alice)).get("/operator/deployments")
    assert refused.status_code in (403, 404)


async def test_the_public_models_table_and_the_catalogue_show_a_cold_deployment(api, portal, factory, session, world):
    from jaif.catalogue import service as catalogue
    from jaif.deployments import service
    from jaif.inference.registry import ModelRegistry

    operator, alice = world.operator(), world.user("alice")
    lab = world.project(alice)
    grant(session, lab, partition="local")
    made = await api.as_(operator).post("/api/v1/deployments", json=BODY | {"name": "chat-c", "project": lab.name,
                                                                            "min_replicas": 0})
    assert made.status_code == 201, made.text
    registry = ModelRegistry(factory, lambda url, **kw: None, cooldown_s=1, builtin=False,
                             standing=service.served_models)
    registry.load()
    api.app.state.runtime.registry = registry
    home = await api.anonymous.get("/")
    assert home.status_code == 200
    row = home.text[home.text.index("<code>chat-c</code>"):].split("</tr>")[0]
    assert "cold: the first request starts it (about 30 s)" in row, row
    catalogue.create_solution(session=session, actor=operator, slug="chat-c", name="Chat C",
                              summary="A chat model.", model="chat-c", is_published=True)
    session.commit()
    card = await (await portal.as_(alice)).get("/catalogue/chat-c")
    assert "Served · cold" in card.text and "the first request starts it (about 30 s)" in card.text, card.text
