"""/api/v1/jobs through the ASGI app with real personal access tokens, on the local executor (real
processes), and the partitions and report endpoints."""

from __future__ import annotations

from tests.integration.compute.conftest import grant, wait_state


async def test_submit_follow_and_cancel_through_the_api(api, session, world):
    alice, mallory = world.user("alice"), world.user("mallory")
    lab = world.project(alice)
    grant(session, lab, partition="local")
    as_alice, as_mallory = api.as_(alice), api.as_(mallory)
    body = {"project": lab.name, "partition": "local", "gpus": 1, "time": 5,
            "script": "#!/bin/bash\necho hello from $CUDA_VISIBLE_DEVICES\necho oops >&2\n"}
    made = await as_alice.post("/api/v1/jobs", json=body)
    assert made.status_code == 201, made.text
    job = made.json()
    assert (job["project"], job["user"], job["partition"], job["gpus"]) == (lab.name, alice.email, "local", 1)
    done = await wait_state(as_alice, job["job_id"], {"completed"})
    assert done["exit_code"] == 0 and done["started_at"] and done["ended_at"]
    logs = (await as_alice.get(f"/api/v1/jobs/{job['job_id']}/logs")).json()
    assert logs["stdout"] == "hello from 0\n" and logs["stderr"] == "oops\n" and logs["stdout_offset"] == 13
    listed = (await as_alice.get("/api/v1/jobs", params={"project": lab.name})).json()
    assert [j["job_id"] for j in listed] == [job["job_id"]]
    # someone else's job and project do not exist for mallory
    assert (await as_mallory.get(f"/api/v1/jobs/{job['job_id']}")).status_code == 404
    assert (await as_mallory.get("/api/v1/jobs")).json() == []
    refused = await as_mallory.post("/api/v1/jobs", json=body)
    assert refused.status_code == 404 and refused.json()["error"]["param"] == "project"
    # a long job, cancelled
    long = (await as_alice.post("/api/v1/jobs", json=body | {"script": "sleep 60"})).json()
    await wait_state(as_alice, long["job_id"], {"running"})
    cancelled = await as_alice.post(f"/api/v1/jobs/{long['job_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"


async def test_refusals_say_why(api, session, world):
    alice = world.user("alice")
    lab = world.project(alice)
    as_alice = api.as_(alice)
    body = {"project": lab.name, "partition": "local", "gpus": 1, "time": 5, "script": "echo"}
    missing = await as_alice.post("/api/v1/jobs", json=body)
    assert missing.status_code == 403 and "has no GPU-hour allocation on partition local" in missing.text
    grant(session, lab, partition="local", gpu_hours=0.01)
    for change, status, param, words in [
        ({"partition": "h100"}, 400, "partition", "unknown partition 'h100'; partitions: local"),
        ({"gpus": 9}, 400, "gpus", "has 4 GPUs per node; 9 asked for"),
        ({"time": 100000}, 400, "time", "allows at most 1440 minutes"),
        ({"time": 60}, 429, "time", "could use 1.00 GPU-hours (60 min x 1 GPUs)"),
    ]:
        response = await as_alice.post("/api/v1/jobs", json=body | change)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["param"] == param and words in error["message"], error
    assert (await as_alice.get("/api/v1/jobs")).json() == []


async def test_partitions_and_report(api, session, world):
    alice = world.user("alice")
    lab = world.project(alice)
    as_alice = api.as_(alice)
    partitions = (await as_alice.get("/api/v1/partitions")).json()
    assert [(p["name"], p["gpus_per_node"], p["charge"]) for p in partitions] == [("local", 4, "gpu")]
    report = await as_alice.get("/api/v1/compute/report", params={"project": lab.name})
    assert report.status_code == 200, report.text
    assert {"gpu_hours", "energy_kwh", "co2_kg", "tokens"} <= set(report.json())
    assert (await api.anonymous.get("/api/v1/jobs")).status_code == 401
    assert (await as_alice.post("/api/v1/slurm/sync")).status_code == 403


async def test_the_job_list_comes_in_pages_and_filters_by_state(api, session, world):
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab, partition="local")
    as_alice = api.as_(alice)
    body = {"project": lab.name, "partition": "local", "gpus": 0, "time": 5, "script": "echo hi"}
    made = [(await as_alice.post("/api/v1/jobs", json=body)).json()["job_id"] for _ in range(3)]
    for job_id in made:
        await wait_state(as_alice, job_id, {"completed"})
    first = await as_alice.get("/api/v1/jobs", params={"limit": 2})
    assert first.status_code == 200 and first.headers["x-total-count"] == "3"
    assert 'rel="next"' in first.headers["link"] and "offset=2" in first.headers["link"]
    rest = await as_alice.get("/api/v1/jobs", params={"limit": 2, "offset": 2})
    newest_first = [j["job_id"] for j in first.json()] + [j["job_id"] for j in rest.json()]
    assert sorted(newest_first) == sorted(made) and len(set(newest_first)) == 3
    done = await as_alice.get("/api/v1/jobs", params={"state": "completed"})
    assert done.headers["x-total-count"] == "3"
    assert (await as_alice.get("/api/v1/jobs", params={"state": "running"})).json() == []
    wrongs = (({"state": "finished"}, "state"), ({"limit": 0}, "query.limit"), ({"offset": -1}, "query.offset"))
    for params, param in wrongs:
        wrong = await as_alice.get("/api/v1/jobs", params=params)
        assert wrong.status_code == 400 and wrong.json()["error"]["param"] == param, wrong.text


async def test_an_unbalanced_quote_in_a_template_parameter_is_a_400_that_names_it(api, session, world):
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab, partition="local")
    body = {"project": lab.name, "partition": "local", "gpus": 0, "time": 5, "template": "python",
            "params": {"script": "train.py", "args": "--name 'unclosed"}}
    response = await api.as_(alice).post("/api/v1/jobs", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "params.args" and "--param args" in error["message"], error
    assert "quot" in error["message"] and "Traceback" not in response.text
    assert (await api.as_(alice).get("/api/v1/jobs")).json() == []
