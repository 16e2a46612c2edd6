"""The gateway's hold of a request for a deployment with no replica (a cold start), through a real `jaif
serve` whose controller is off (deployments.enabled=false), so the test decides when a replica appears:

- a held request counts in the server's load report (what the controller scales on), and is answered as
  soon as a replica joins the deployment's model (here the stand-in upstream, put in by hand);
- past deployments.cold_start_timeout_s it is answered 503 `model_starting` with Retry-After;
- a client that gives up while held is recorded as cancelled (499), and the held count goes back to 0.
"""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from jaif.deployments import service as deployments
from tests.e2e.compute.conftest import shared_tmp
from tests.support.gateway import FAST_ROUTING, _session, records_after
from tests.support.procs import base_env, jaif, last_line, server, upstream, wait_for

HOLD_S = 3


@pytest.fixture(scope="module")
def env():
    with shared_tmp("hold") as tmp:
        env = base_env(
            JAIF_DATABASE_URL=f"sqlite:///{tmp / 'jaif.db'}", JAIF_DATA_DIR=str(tmp / "var"),
            JAIF_INFERENCE__BUILTIN_MODELS="false", JAIF_SCHEDULER="local", JAIF_COMPUTE__JOBS_DIR=str(tmp / "jobs"),
            JAIF_METERING__FLUSH_INTERVAL_S="0.2", JAIF_DEPLOYMENTS__ENABLED="false",
            JAIF_DEPLOYMENTS__COLD_START_TIMEOUT_S=str(HOLD_S), JAIF_SLURM__SYNC_INTERVAL_S="0", **FAST_ROUTING,
        )
        jaif(env, "db", "upgrade")
        jaif(env, "org", "create", "Factory", "--sector", "public", "--country", "DE")
        jaif(env, "project", "create", "inference", "--org", "Factory", "--token-quota", "100000")
        jaif(env, "allocation", "create", "--project", "inference", "--days", "30", "--partition", "local",
             "--gpu-hours", "10")
        env["KEY"] = last_line(jaif(env, "key", "create", "--project", "inference"))
        jaif(env, "deployment", "create", "held", "--model", "smollm2-135m-instruct", "--engine", "llama-cpp",
             "--partition", "local", "--min-replicas", "0", "--project", "inference")
        yield env


def held_now(env) -> int:
    with _session(env["JAIF_DATABASE_URL"]) as session:
        return deployments.read_load(session, fresh_s=5).held.get("held", 0)


def ask(base: str, key: str, timeout: float = 30.0) -> openai.types.chat.ChatCompletion:
    with openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=timeout) as client:
        return client.chat.completions.create(model="held", messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=4)


def test_a_held_request_is_reported_answered_by_a_new_replica_refused_past_the_limit_or_cancelled(env):
    database = env["JAIF_DATABASE_URL"]
    with server(env) as base, upstream(env) as (url, _proc):
        with openai.OpenAI(base_url=base + "/v1", api_key=env["KEY"], max_retries=0) as client:
            assert client.models.retrieve("held").model_extra["status"]["state"] == "cold"
        # held until a replica joins: the load report says so at once
        answers: list = []
        waiting = threading.Thread(target=lambda: answers.append(ask(base, env["KEY"])))
        started = time.monotonic()
        waiting.start()
        assert wait_for(lambda: held_now(env), lambda n: n == 1, timeout=5) == 1
        with _session(database) as session:
            from jaif.inference import service as inference

            inference.add_replica(session=session, model_name="held", url=url)
        waiting.join(15)
        assert answers and answers[0].choices[0].message.content, answers
        assert time.monotonic() - started < HOLD_S + 2
        assert wait_for(lambda: held_now(env), lambda n: n == 0, timeout=5) == 0
        with _session(database) as session:
            from jaif.inference import service as inference

            inference.remove_replica(session=session, model_name="held", url=url)

        # past the cold-start limit: 503 model_starting with Retry-After, in the OpenAI shape
        time.sleep(1)  # the registry lets the replica go
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as refused:
            ask(base, env["KEY"])
        waited = time.monotonic() - started
        assert refused.value.status_code == 503 and refused.value.body["code"] == "model_starting", refused.value.body
        assert float(refused.value.response.headers["retry-after"]) >= 1
        assert HOLD_S - 0.5 <= waited < HOLD_S + 3, waited

        # a client that gives up while held: cancelled, and no longer counted as held
        with pytest.raises(httpx.TimeoutException):
            httpx.post(base + "/v1/chat/completions", headers={"Authorization": f"Bearer {env['KEY']}"},
                       json={"model": "held", "messages": [{"role": "user", "content": "hi"}]}, timeout=1.0)
        records = records_after(database, model="held", count=3)
        assert [(r.status, r.status_code) for r in records] == [("ok", 200), ("error", 503), ("cancelled", 499)]
        assert wait_for(lambda: held_now(env), lambda n: n == 0, timeout=5) == 0


def test_an_error_answer_of_a_deployments_replica_is_passed_on_at_once_not_held(env):
    """A 5xx answer from the only replica must reach the client at once: the request is not held for a
    replacement the controller has no reason to start (it waited the whole cold-start limit)."""
    with server(env) as base, upstream(env, "--error-on", "boom") as (url, _proc):
        with _session(env["JAIF_DATABASE_URL"]) as session:
            from jaif.inference import service as inference

            inference.add_replica(session=session, model_name="held", url=url)
        with openai.OpenAI(base_url=base + "/v1", api_key=env["KEY"], max_retries=0, timeout=30) as client:
            wait_for(lambda: client.models.retrieve("held").model_extra["status"]["state"], lambda s: s == "ready",
                     timeout=10)
            started = time.monotonic()
            with pytest.raises(openai.APIStatusError) as failed:
                client.chat.completions.create(model="held", messages=[{"role": "user", "content": "boom"}])
            assert failed.value.status_code == 500 and time.monotonic() - started < HOLD_S - 1
            assert client.chat.completions.create(model="held", messages=[{"role": "user", "content": "hi"}],
                                                  max_tokens=3).choices[0].message.content
        with _session(env["JAIF_DATABASE_URL"]) as session:
            from jaif.inference import service as inference

            inference.remove_replica(session=session, model_name="held", url=url)
