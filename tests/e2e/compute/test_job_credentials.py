"""A job's own gateway credential (issue 9, item 6), end to end on a real `jaif serve` with the local
executor: a project member (not PI) submits a batch-inference job through POST /api/v1/jobs; the job
answers its requests through /v1 with a credential of its own, charged to the project; no project key
is made or listed; after the job the credential is refused (401, with the official openai client)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import openai
import pytest

from jaif.access import service as access
from jaif.allocations import service as allocations
from jaif.files import service as files
from jaif.files.store import FileStore
from jaif.identity import pats
from tests.support.api import usage_after
from tests.support.procs import JAIF, free_port, jaif, started, upstream

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: local jobs run as accounts jaif creates")


def _member_and_pi(platform, project: str) -> tuple[str, str]:
    """Tokens of a PI and of a member of ``project`` (verified addresses, as tokens need)."""
    with platform.session() as session:
        tokens = []
        for role in ("pi", "member"):
            user, _password = access.create_user(session=session, email=f"{role}-{project}@example.org")
            user.email_verified_at = user.created_at
            access.add_member(session=session, project_name=project, email=user.email, role=role)
            session.flush()
            tokens.append(pats.create(session=session, user_id=user.id, name="test")[1])
    return tokens[0], tokens[1]


def test_a_members_batch_inference_job_uses_a_credential_of_its_own(platform):
    if platform.kind != "local":
        pytest.skip("on the local executor only: the credential is the service's, the same under Slurm "
                    "(tests/integration/compute/test_jobs.py); sbatch passes it in the job's environment")
    project = f"cred{os.urandom(3).hex()}"
    with platform.session() as session:
        access.create_organisation(session=session, name=f"Org {project}", sector="academia", country="DE")
        made = access.create_project(session=session, name=project, organisation=f"Org {project}",
                                     token_quota=100_000)
        project_id = made.id
        allocations.allocate(session=session, project_id=project_id, resource="gpu_hours", amount=5,
                             partition="local", days=30)
    pi_token, member_token = _member_and_pi(platform, project)
    port = free_port()
    # The port on the command line only: the job must get it all the same (issue 14, item 2).
    env = {**platform.env, "JAIF_INFERENCE__KEY_CACHE_S": "0"}
    # the input: one of the project's files (uploaded to /v1/files or its Files page), copied into the job's dir
    data = platform.tmp / "requests.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"say {w}"}) + "\n" for w in ("one", "two")))
    with platform.session() as session:
        input_id = files.add_file(session=session, store=FileStore(platform.tmp / "var" / "files"), source=data,
                                  project_id=project_id, purpose="user_data", filename="requests.jsonl").id
    with upstream(env) as (url, _proc):
        jaif(env, "model", "add", "cred-chat", "--upstream", url)
        with started([JAIF, "serve", "--port", str(port)], env, f"http://127.0.0.1:{port}/healthz"), \
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            as_pi = {"authorization": f"Bearer {pi_token}"}
            as_member = {"authorization": f"Bearer {member_token}"}
            keys_before = http.get(f"/api/v1/projects/{project_id}/keys", headers=as_pi)
            assert keys_before.status_code == 200, keys_before.text

            made = http.post("/api/v1/jobs", headers=as_member, json={
                "project": project, "partition": "local", "gpus": 0, "time": 5, "template": "batch-inference",
                "params": {"input": input_id, "model": "cred-chat", "max_tokens": "8"}})
            assert made.status_code == 201, made.text
            job_id = made.json()["job_id"]
            job = {}
            for _ in range(300):
                job = http.get(f"/api/v1/jobs/{job_id}", headers=as_member).json()
                if job["state"] not in ("pending", "running"):
                    break
                time.sleep(0.2)
            logs = http.get(f"/api/v1/jobs/{job_id}/logs", headers=as_member).json()
            assert job["state"] == "completed", (job, logs)
            assert "2 requests answered" in logs["stdout"]

            # the job's credential worked: both answers came through /v1, charged to the project
            results = [json.loads(line) for line in (Path(job["workdir"]) / "results.jsonl").read_text().splitlines()]
            assert [r["response"]["object"] for r in results] == ["chat.completion"] * 2
            usage = usage_after(env, project, requests=2)
            assert usage["prompt_tokens"] > 0

            # no project key: the lists are as they were, and nothing in the job's directory holds a secret
            assert http.get(f"/api/v1/projects/{project_id}/keys", headers=as_pi).json() == keys_before.json()
            assert json.loads(jaif(env, "key", "list", "--project", project, "--json").stdout) == []
            state = json.loads((platform.tmp / "jobs" / ".local" / "jobs" / f"{job_id}.json").read_text())
            secret = state["environment"]["OPENAI_API_KEY"]  # what the job was given (the server's record)
            assert state["environment"]["OPENAI_BASE_URL"] == f"http://127.0.0.1:{port}/v1"
            for item in Path(job["workdir"]).iterdir():
                assert secret not in item.read_text(errors="replace"), item

            # the job has ended: its credential is useless
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=secret, max_retries=0)
            with pytest.raises(openai.AuthenticationError) as refused:
                client.chat.completions.create(model="cred-chat", messages=[{"role": "user", "content": "hi"}])
            assert refused.value.status_code == 401
