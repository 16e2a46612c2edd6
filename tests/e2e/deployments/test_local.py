"""A deployment on the local scheduler, end to end: `jaif deployment create` with the built-in SmolLM2
weights on the llama-cpp engine (llama-cpp-python's server as a local job, under the jobs' sandbox
rules), a real `jaif serve` whose controller starts the replica and routes to it once ready, a chat
completion through /v1 with the openai SDK (metered), a crashed replica replaced, and delete draining
the replica until its process has ended."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from jaif.compute.local import LocalScheduler
from tests.e2e.compute.conftest import shared_tmp
from tests.support.deployments import listed
from tests.support.procs import base_env, jaif, last_line, server, wait_for

READY_S = 240.0  # a replica's job starts, imports llama_cpp and loads the model (a loaded 2-core machine)


@pytest.fixture(scope="module")
def env():
    with shared_tmp("deploy") as tmp:
        env = base_env(
            JAIF_DATABASE_URL=f"sqlite:///{tmp / 'jaif.db'}", JAIF_DATA_DIR=str(tmp / "var"),
            JAIF_INFERENCE__BUILTIN_MODELS="false", JAIF_SCHEDULER="local", JAIF_COMPUTE__JOBS_DIR=str(tmp / "jobs"),
            JAIF_METERING__FLUSH_INTERVAL_S="0.2", JAIF_DEPLOYMENTS__INTERVAL_S="0.5", JAIF_DEPLOYMENTS__DRAIN_S="1",
            JAIF_SLURM__SYNC_INTERVAL_S="0", JAIF_DEPLOYMENTS__COLD_START_TIMEOUT_S=str(int(READY_S)),
        )
        jaif(env, "db", "upgrade")
        jaif(env, "org", "create", "Factory", "--sector", "public", "--country", "DE")
        jaif(env, "project", "create", "inference", "--org", "Factory", "--token-quota", "100000")
        jaif(env, "allocation", "create", "--project", "inference", "--days", "30", "--partition", "local",
             "--gpu-hours", "10")
        env["KEY"] = last_line(jaif(env, "key", "create", "--project", "inference"))
        env["JOBS"] = str(tmp / "jobs")
        try:
            yield env
        finally:  # replicas outlive the server by design: a failed test leaves none behind
            local = LocalScheduler(tmp / "jobs" / ".local", gpus=4, isolation=None)  # cancel needs no isolation
            for path in (tmp / "jobs" / ".local" / "jobs").glob("*.json"):
                local.cancel(path.stem)


def deployments(env) -> list[dict]:
    return listed(env["JAIF_DATABASE_URL"])


def replicas(env, state: str, name: str = "chat") -> list[dict]:
    found = [d for d in deployments(env) if d["name"] == name]
    return [r for r in found[0]["replicas"] if r["state"] == state] if found else []


def job_state(env, job_id: str) -> dict:
    return json.loads((Path(env["JOBS"]) / ".local" / "jobs" / f"{job_id}.json").read_text())


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def chat(base: str, key: str) -> openai.types.chat.ChatCompletion:
    with openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120) as client:
        return client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Say hi"}],
                                              max_tokens=5)


def test_a_deployment_serves_is_replaced_when_it_crashes_and_drains_on_delete(env):
    jaif(env, "deployment", "create", "chat", "--model", "smollm2-135m-instruct", "--engine", "llama-cpp",
         "--partition", "local", "--gpus-per-replica", "0", "--min-replicas", "1", "--max-replicas", "1",
         "--target-inflight", "4", "--idle-minutes", "30", "--walltime", "60", "--project", "inference",
         "--alias", "chat-latest")
    # a deployment whose project cannot pay: it never gets a replica
    jaif(env, "project", "create", "starved", "--org", "Factory")
    jaif(env, "deployment", "create", "cold", "--model", "smollm2-135m-instruct", "--engine", "llama-cpp",
         "--partition", "local", "--project", "starved")
    listed = json.loads(last_line(jaif(env, "deployment", "list", "--json")))  # the command; polls read in-process
    assert listed == deployments(env)
    assert [(d["name"], d["replicas"]) for d in listed] == [("chat", []), ("cold", [])]  # nothing runs yet
    with server(env) as base:
        ready = wait_for(lambda: replicas(env, "ready"), bool, timeout=READY_S, every=0.5)
        assert len(ready) == 1, deployments(env)
        first = ready[0]
        assert first["slurm_job_id"] is None and first["node"] == "127.0.0.1" and first["port"]
        state = job_state(env, first["job_id"])
        assert state["user"].startswith("jaif-job-") or not os.geteuid() == 0  # the project's account, not root

        with openai.OpenAI(base_url=base + "/v1", api_key=env["KEY"], max_retries=0) as client:
            assert {"chat", "chat-latest", "cold"} <= {m.id for m in client.models.list()}
        reply = chat(base, env["KEY"])
        assert reply.choices[0].message.content and reply.usage.completion_tokens >= 1
        usage = wait_for(lambda: json.loads(last_line(jaif(env, "usage", "--project", "inference", "--json"))),
                         lambda u: u["requests"] == 1)
        assert usage["requests"] == 1 and usage["completion_tokens"] == reply.usage.completion_tokens
        with openai.OpenAI(base_url=base + "/v1", api_key=env["KEY"], max_retries=0) as client:
            # no replica of it is ready: 503 with Retry-After in the OpenAI shape, not 404
            with pytest.raises(openai.APIStatusError) as cold:
                client.chat.completions.create(model="cold", messages=[{"role": "user", "content": "hi"}])
            assert cold.value.status_code == 503 and cold.value.response.headers["retry-after"]
            assert cold.value.body["code"] == "service_unavailable", cold.value.body
            assert "no replica can be started" in cold.value.body["message"]  # not held: it could never start
            starved = client.models.retrieve("cold").model_extra["status"]
            assert starved["state"] == "unavailable", starved
            assert "allocation" not in starved["reason"] and "starved" not in str(starved)  # operators' business
        assert replicas(env, "pending", name="cold") == []  # refused (no allocation): said in the log
        shown = json.loads(last_line(jaif(env, "deployment", "show", "cold", "--json")))
        assert any("could not submit a replica" in e["message"] and "allocation" in e["message"]
                   for e in shown["events"]), shown["events"]

        # the replica crashes: it is replaced, and the deployment serves again
        os.killpg(state["pid"], signal.SIGKILL)
        failed = wait_for(lambda: replicas(env, "failed"), bool, timeout=60, every=0.5)
        assert [r["job_id"] for r in failed] == [first["job_id"]] and "its job ended" in failed[0]["reason"]
        second = wait_for(lambda: replicas(env, "ready"), bool, timeout=READY_S, every=0.5)
        assert len(second) == 1 and second[0]["job_id"] != first["job_id"], deployments(env)
        deadline = time.monotonic() + 30  # the gateway's registry follows within a refresh
        while True:
            try:
                assert chat(base, env["KEY"]).choices[0].message.content
                break
            except openai.APIStatusError:
                assert time.monotonic() < deadline
                time.sleep(0.5)

        # the crashed replica's job charged by the accounting import; the running one not yet
        jaif(env, "accounting", "import")
        served = wait_for(lambda: json.loads(last_line(jaif(env, "usage", "--project", "inference", "--json"))),
                          lambda u: u["requests"] == 2)
        report = json.loads(last_line(jaif(env, "report", "--deployment", "chat", "--json")))
        assert (report["deployment"], report["replicas"], report["replicas_uncharged"]) == ("chat", 1, 1), report
        assert report["tokens"] == served["total_tokens"] and report["requests"] == 2, (report, served)
        assert (report["gpu_hours"], report["kwh_per_1k_tokens"]) == (0.0, 0.0)  # no GPU: nothing to charge

        # delete: out of the routing, drained, cancelled; then the deployment and its model are gone
        pid = job_state(env, second[0]["job_id"])["pid"]
        out = jaif(env, "deployment", "delete", "chat").stdout
        assert "1 replica(s) draining" in out
        assert wait_for(lambda: [d["name"] for d in deployments(env)], lambda d: d == ["cold"], timeout=60,
                        every=0.5) == ["cold"]
        assert wait_for(lambda: alive(pid), lambda a: not a, timeout=30) is False
        assert job_state(env, second[0]["job_id"])["state"] == "cancelled"
        with openai.OpenAI(base_url=base + "/v1", api_key=env["KEY"]) as client:
            missing = wait_for(lambda: {m.id for m in client.models.list()}, lambda ids: "chat" not in ids)
            assert "chat" not in missing and "chat-latest" not in missing


def test_a_walltime_handover_under_load_fails_no_request(env):
    """A replica with a 2-minute time limit is handed over (successor from 60 s before its end, see
    deployments.handover_s: at most half the walltime) while a client sends requests one after another:
    none fails."""
    jaif(env, "deployment", "create", "short", "--model", "smollm2-135m-instruct", "--engine", "llama-cpp",
         "--partition", "local", "--walltime", "2", "--project", "inference")
    with server(env) as base:
        first = wait_for(lambda: replicas(env, "ready", name="short"), bool, timeout=READY_S, every=0.5)
        assert len(first) == 1, deployments(env)
        outcomes: list[str] = []
        with openai.OpenAI(base_url=base + "/v1", api_key=env["KEY"], max_retries=0, timeout=120) as client:
            deadline = time.monotonic() + 150 + READY_S
            while time.monotonic() < deadline:
                try:
                    client.chat.completions.create(model="short", max_tokens=3,
                                                   messages=[{"role": "user", "content": "hi"}])
                    outcomes.append("ok")
                except openai.APIError as exc:
                    outcomes.append(f"{type(exc).__name__}: {exc}")
                ended = [r for r in replicas(env, "ended", name="short") if r["job_id"] == first[0]["job_id"]]
                if ended:
                    break
        # drained and ended before its time limit (a replica killed at its limit would be "failed")
        assert ended and ended[0]["reason"] == "drained", deployments(env)
        now_ready = replicas(env, "ready", name="short")
        assert len(now_ready) == 1 and now_ready[0]["job_id"] != first[0]["job_id"]
        failed = [o for o in outcomes if o != "ok"]
        assert outcomes and failed == [], failed
        jaif(env, "deployment", "delete", "short")
        wait_for(lambda: replicas(env, "ready", name="short"), lambda r: r == [], timeout=60, every=0.5)


def status(base: str, key: str, model: str) -> dict:
    with openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0) as client:
        return client.models.retrieve(model).model_extra["status"]


def test_scale_to_zero_and_cold_starts_held_across_two_servers_with_one_controller(env):
    """min 0: no replica until a request comes. Two servers share the database; requests to the one
    that does not run the controller are held (a stream and a plain one), its load report makes the
    other start a replica, and both are answered. Idle, the deployment scales to zero. When the server
    running the controller stops, the other takes it over, and a cold start works again through it."""
    jaif(env, "deployment", "create", "lazy", "--model", "smollm2-135m-instruct", "--engine", "llama-cpp",
         "--partition", "local", "--min-replicas", "0", "--max-replicas", "1", "--idle-minutes", "0.2",
         "--walltime", "60", "--project", "inference")
    with contextlib.ExitStack() as first_server:
        first = first_server.enter_context(server(env))
        assert wait_for(lambda: httpx.get(first + "/healthz").json()["deployments_controller"], bool) is True
        with server(env) as second:
            assert httpx.get(second + "/healthz").json()["deployments_controller"] is False
            time.sleep(2)  # several controller ticks: min 0 and no request, so nothing is submitted
            assert [d["replicas"] for d in deployments(env) if d["name"] == "lazy"] == [[]]
            assert status(second, env["KEY"], "lazy")["state"] == "cold"

            outcomes: dict[str, str] = {}

            def ask(kind: str) -> None:
                try:
                    with openai.OpenAI(base_url=second + "/v1", api_key=env["KEY"], max_retries=0,
                                       timeout=READY_S + 60) as client:
                        messages = [{"role": "user", "content": "Say hi"}]
                        if kind == "stream":
                            chunks = list(client.chat.completions.create(model="lazy", messages=messages,
                                                                         max_tokens=5, stream=True))
                            finished = [c.choices[0].finish_reason for c in chunks if c.choices]
                            outcomes[kind] = "ok" if finished and finished[-1] else f"unfinished: {chunks}"
                        else:
                            reply = client.chat.completions.create(model="lazy", messages=messages, max_tokens=5)
                            outcomes[kind] = "ok" if reply.choices[0].message.content else "empty"
                except Exception as exc:  # noqa: BLE001 - the outcome is asserted below
                    outcomes[kind] = f"{type(exc).__name__}: {exc}"

            threads = [threading.Thread(target=ask, args=(kind,)) for kind in ("stream", "plain")]
            for thread in threads:
                thread.start()
            assert wait_for(lambda: status(second, env["KEY"], "lazy")["state"], lambda s: s != "cold",
                            timeout=15) in ("starting", "ready")
            for thread in threads:
                thread.join(READY_S + 90)
            assert outcomes == {"stream": "ok", "plain": "ok"}, outcomes
            shown = json.loads(last_line(jaif(env, "deployment", "show", "lazy", "--json")))
            assert any(e["message"].startswith("scale up 0 -> 1: ") for e in shown["events"]), shown["events"]
            # idle for 12 s: scaled to zero, the replica drained and stopped
            ended = wait_for(lambda: replicas(env, "ended", name="lazy"), bool, timeout=60, every=0.5)
            assert ended and ended[0]["reason"] == "drained", deployments(env)
            shown = json.loads(last_line(jaif(env, "deployment", "show", "lazy", "--json")))
            assert any("ready -> draining: scaled to zero (idle)" in e["message"] for e in shown["events"]), shown
            assert any(e["message"].startswith("scale to zero 1 -> 0: no request for ") for e in shown["events"])
            assert replicas(env, "ready", name="lazy") == []
            first_server.close()  # the controller's server stops: the other takes over
            assert wait_for(lambda: httpx.get(second + "/healthz").json()["deployments_controller"], bool,
                            timeout=15) is True
            assert wait_for(lambda: status(second, env["KEY"], "lazy")["state"], lambda s: s == "cold",
                            timeout=15) == "cold"
            with openai.OpenAI(base_url=second + "/v1", api_key=env["KEY"], max_retries=0,
                               timeout=READY_S + 60) as client:
                reply = client.chat.completions.create(model="lazy", messages=[{"role": "user", "content": "hi"}],
                                                       max_tokens=3)
            assert reply.choices[0].message.content
            jaif(env, "deployment", "delete", "lazy")
            wait_for(lambda: [d["name"] for d in deployments(env)], lambda names: "lazy" not in names, timeout=60)
