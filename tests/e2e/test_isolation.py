"""Isolation between projects: a key of project A never sees, uses, spends or is charged for project B's
models, allowance or usage. Two projects on one real `jaif serve`; the ledger read back with `jaif usage`.

The gateway fixture keeps what each project was really sent (successful requests and the usage the
server reported to the client), so every test can check the ledger against it exactly.
"""

from __future__ import annotations

import collections
import json

import httpx
import pytest

from tests.support.api import bearer, openai_error, sse_payloads, usage_after
from tests.support.databases import one_database
from tests.support.openai_schema import assert_valid
from tests.support.procs import last_line, server, upstream
from tests.support.services import Cli

pytestmark = one_database()
A, B = "alpha", "beta"
QUOTA_A = 300


@pytest.fixture(scope="module")
def gateway(module_env):
    """A: 300 tokens, only shared-chat. B: plenty, shared-chat and b-only. An embedding model neither lists."""
    env = module_env
    cli = Cli(env)  # the set-up through the CLI's own code, in-process: a second a command less
    cli("org", "create", "Uni A", "--sector", "academia", "--country", "DE")
    cli("org", "create", "Firm B", "--sector", "industry", "--country", "FR")
    cli("project", "create", A, "--org", "Uni A", "--token-quota", str(QUOTA_A), "--allow-model", "shared-chat")
    cli("project", "create", B, "--org", "Firm B", "--token-quota", "1000000",
         "--allow-model", "shared-chat", "--allow-model", "b-only")

    def key(project: str, *extra: str) -> str:
        return last_line(cli("key", "create", "--project", project, *extra))

    keys = {"a": key(A), "a2": key(A), "a_rpm1": key(A, "--rpm", "1"), "b": key(B)}
    with upstream(env) as (url, _proc):
        cli("model", "add", "shared-chat", "--upstream", url, "--alias", "default-chat")
        cli("model", "add", "b-only", "--upstream", url)
        cli("model", "add", "open-embed", "--upstream", url, "--kind", "embedding")
        with server(env) as base, httpx.Client(base_url=base, timeout=30) as http:
            yield {"env": env, "http": http, "keys": keys,
                   "requests": collections.Counter(), "tokens": collections.Counter()}


def call(gateway, who: str, path: str, body: dict) -> httpx.Response:
    """POST as key ``who``; a success is booked to that key's project (its usage as the client saw it)."""
    response = gateway["http"].post(path, json=body, headers=bearer(gateway["keys"][who]))
    if response.status_code == 200:
        project = A if who.startswith("a") else B
        if body.get("stream"):
            usage = json.loads(sse_payloads(response)[-2])["usage"]
        else:
            usage = response.json()["usage"]
        gateway["requests"][project] += 1
        gateway["tokens"][project] += usage["total_tokens"]
    return response


def chat(gateway, who: str, model: str = "shared-chat", **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5, **extra}
    return call(gateway, who, "/v1/chat/completions", body)


def ledger(gateway, project: str) -> dict:
    """The project's usage once every request it was sent is in the ledger; checked against the bookings."""
    usage = usage_after(gateway["env"], project, requests=gateway["requests"][project])
    assert usage["errors"] == 0, usage
    assert usage["total_tokens"] == gateway["tokens"][project], usage
    assert usage["tokens_spent"] == gateway["tokens"][project], usage
    return usage


def test_each_key_lists_only_its_projects_models(gateway):
    http, keys = gateway["http"], gateway["keys"]
    listed = {}
    for who in ("a", "b"):
        response = http.get("/v1/models", headers=bearer(keys[who]))
        assert response.status_code == 200
        assert_valid(response.json(), "ListModelsResponse")
        listed[who] = {m["id"] for m in response.json()["data"]}
    assert listed["a"] == {"shared-chat", "default-chat"}
    assert listed["b"] == {"shared-chat", "default-chat", "b-only"}
    assert http.get("/v1/models/default-chat", headers=bearer(keys["a"])).status_code == 200
    openai_error(http.get("/v1/models/b-only", headers=bearer(keys["a"])), 403, code="model_not_allowed")


def test_model_of_b_only_is_forbidden_to_a(gateway):
    for who in ("a", "a2"):
        error = openai_error(chat(gateway, who, model="b-only"), 403, code="model_not_allowed", param="model")
        assert A in error["message"] and B not in error["message"], error
    embed = call(gateway, "a", "/v1/embeddings", {"model": "open-embed", "input": "x"})
    openai_error(embed, 403, code="model_not_allowed")
    assert chat(gateway, "b", model="b-only").status_code == 200
    # None of the refusals reached the ledger of either project.
    ledger(gateway, A)
    ledger(gateway, B)


def test_requests_are_charged_to_the_keys_project_only(gateway):
    before_b = ledger(gateway, B)
    assert chat(gateway, "a").status_code == 200
    assert chat(gateway, "a2", model="default-chat").status_code == 200
    stream = chat(gateway, "a", stream=True, stream_options={"include_usage": True})
    assert stream.status_code == 200
    text = call(gateway, "a", "/v1/completions", {"model": "shared-chat", "prompt": "once", "max_tokens": 2})
    assert text.status_code == 200
    usage_a = ledger(gateway, A)
    assert [m["model"] for m in usage_a["models"]] == ["shared-chat"]
    # B's books did not move: the ledger holds B's own requests, no more.
    last_b = chat(gateway, "b")  # flushed after A's, so once it is in, A's are too
    usage_b = ledger(gateway, B)
    assert usage_b["requests"] == before_b["requests"] + 1
    assert usage_b["tokens_spent"] == before_b["tokens_spent"] + last_b.json()["usage"]["total_tokens"]


def test_rate_limit_of_a_key_binds_that_key_only(gateway):
    responses = [chat(gateway, "a_rpm1") for _ in range(2)]
    if responses[1].status_code == 200:  # the one-minute window rolled over between the two; once more
        responses = [chat(gateway, "a_rpm1") for _ in range(2)]
    assert responses[0].status_code == 200
    openai_error(responses[1], 429, code="rate_limit_exceeded")
    assert chat(gateway, "a").status_code == 200
    assert chat(gateway, "b").status_code == 200


def test_a_cannot_spend_bs_allowance(gateway):
    """Spend all of A's 300 tokens: A gets 429 while B, with plenty left, is served as before."""
    for who, max_tokens in (("a", 20), ("a2", 1)):  # big requests first, then the smallest, from both keys
        statuses = []
        for _ in range(60):
            response = chat(gateway, who, max_tokens=max_tokens)
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
        assert statuses[-1] == 429, statuses
        error = openai_error(response, 429, code="insufficient_quota")
        assert B not in error["message"]
        assert int(response.headers["retry-after"]) >= 1
    assert chat(gateway, "b", max_tokens=20).status_code == 200
    usage_a = ledger(gateway, A)
    assert usage_a["tokens_spent"] <= QUOTA_A
    usage_b = ledger(gateway, B)
    assert usage_b["token_quota"] - usage_b["tokens_spent"] > 900_000
