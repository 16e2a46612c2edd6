"""Bad input to the OpenAI-compatible API: always the right 4xx in the OpenAI error shape, never a 500,
and never a charge in the usage ledger. A real `jaif serve` in front of the stand-in upstream."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.api import bearer, openai_error, usage_after, usage_of
from tests.support.databases import one_database
from tests.support.procs import jaif, last_line, server, upstream
from tests.support.services import Cli

pytestmark = one_database()
MAX_BODY = 16 * 1024
HI = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Bad:
    """One bad request and the error it must get."""

    id: str
    method: str
    path: str
    status: int
    code: str | None = None
    param: str | None = None
    says: str = ""  # the message must contain this (case-insensitive)
    json: object = None
    raw: bytes | None = None
    headers: dict = field(default_factory=dict)

    def send(self, http: httpx.Client) -> httpx.Response:
        if self.raw is not None:
            headers = {"content-type": "application/json", **self.headers}
            return http.request(self.method, self.path, content=self.raw, headers=headers)
        return http.request(self.method, self.path, json=self.json, headers=self.headers)


CASES = [
    Bad("malformed-json", "POST", "/v1/chat/completions", 400, "invalid_json",
        raw=b'{"model": "fake-chat", "messages": [', says="JSON"),
    Bad("empty-body", "POST", "/v1/chat/completions", 400, "invalid_json", raw=b"", says="JSON"),
    Bad("body-not-object", "POST", "/v1/chat/completions", 400, raw=b"[1, 2]", says="object"),
    Bad("max-tokens-string", "POST", "/v1/chat/completions", 400, "invalid_value", "max_tokens", "integer",
        json={"model": "fake-chat", "messages": HI, "max_tokens": "x"}),
    Bad("max-tokens-zero", "POST", "/v1/chat/completions", 400, "invalid_value", "max_tokens",
        json={"model": "fake-chat", "messages": HI, "max_tokens": 0}),
    Bad("messages-not-list", "POST", "/v1/chat/completions", 400, "invalid_value", "messages", "array",
        json={"model": "fake-chat", "messages": "hello"}),
    Bad("messages-empty", "POST", "/v1/chat/completions", 400, "invalid_value", "messages",
        json={"model": "fake-chat", "messages": []}),
    Bad("temperature-5", "POST", "/v1/chat/completions", 400, "invalid_value", "temperature", "2",
        json={"model": "fake-chat", "messages": HI, "temperature": 5}),
    Bad("role-robot", "POST", "/v1/chat/completions", 400, "invalid_value", "messages.0.role", "user",
        json={"model": "fake-chat", "messages": [{"role": "robot", "content": "beep"}]}),
    Bad("content-number", "POST", "/v1/chat/completions", 400, "invalid_value", "messages.0.content",
        json={"model": "fake-chat", "messages": [{"role": "user", "content": 5}]}),
    Bad("stop-number", "POST", "/v1/chat/completions", 400, "invalid_value", "stop",
        json={"model": "fake-chat", "messages": HI, "stop": 5}),
    Bad("n-129", "POST", "/v1/chat/completions", 400, "invalid_value", "n",
        json={"model": "fake-chat", "messages": HI, "n": 129}),
    Bad("missing-model", "POST", "/v1/chat/completions", 400, "missing_required_parameter", "model", "model",
        json={"messages": HI}),
    Bad("missing-messages", "POST", "/v1/chat/completions", 400, "missing_required_parameter", "messages", "messages",
        json={"model": "fake-chat"}),
    Bad("missing-prompt", "POST", "/v1/completions", 400, "missing_required_parameter", "prompt", "prompt",
        json={"model": "fake-chat"}),
    Bad("missing-input", "POST", "/v1/embeddings", 400, "missing_required_parameter", "input", "input",
        json={"model": "fake-embed"}),
    Bad("input-number", "POST", "/v1/embeddings", 400, "invalid_value", "input",
        json={"model": "fake-embed", "input": 5}),
    Bad("unknown-model", "POST", "/v1/chat/completions", 404, "model_not_found", "model", "no-such-model",
        json={"model": "no-such-model", "messages": HI}),
    Bad("unknown-model-get", "GET", "/v1/models/no-such-model", 404, "model_not_found", "model", "no-such-model"),
    Bad("chat-on-embedding-model", "POST", "/v1/chat/completions", 400, "wrong_model_kind", "model", "embedding",
        json={"model": "fake-embed", "messages": HI}),
    Bad("embed-on-chat-model", "POST", "/v1/embeddings", 400, "wrong_model_kind", "model", "chat",
        json={"model": "fake-chat", "input": "x"}),
    Bad("max-tokens-past-context", "POST", "/v1/chat/completions", 400, "context_length_exceeded", "max_tokens", "64",
        json={"model": "small-ctx", "messages": HI, "max_tokens": 100}),
    Bad("completion-past-context", "POST", "/v1/completions", 400, "context_length_exceeded", "max_tokens", "64",
        json={"model": "small-ctx", "prompt": "hi", "max_tokens": 100}),
    Bad("body-too-large", "POST", "/v1/chat/completions", 413, "payload_too_large", says=str(MAX_BODY),
        json={"model": "fake-chat", "messages": [{"role": "user", "content": "x" * MAX_BODY}]}),
    Bad("unknown-route", "POST", "/v1/nowhere", 404, says="/v1/nowhere", json={}),
    Bad("unknown-route-get", "GET", "/v1/chat", 404, says="/v1/chat"),
    Bad("wrong-method", "GET", "/v1/chat/completions", 405, says="GET"),
    Bad("wrong-method-models", "DELETE", "/v1/models", 405, says="DELETE"),
]


@pytest.fixture(scope="module")
def gateway(module_env):
    """Project alpha (keys of every kind), a restricted and a tiny project, three models; jaif serving."""
    env = module_env
    cli = Cli(env)  # the set-up through the CLI's own code, in-process: a second a command less
    cli("org", "create", "Uni A", "--sector", "academia", "--country", "DE")
    cli("project", "create", "alpha", "--org", "Uni A", "--token-quota", "1000000")
    cli("project", "create", "ledger", "--org", "Uni A", "--token-quota", "1000000")
    cli("project", "create", "restricted", "--org", "Uni A", "--allow-model", "fake-chat")
    cli("project", "create", "tiny", "--org", "Uni A", "--token-quota", "40")

    def key(project: str, *extra: str) -> str:
        return last_line(cli("key", "create", "--project", project, *extra))

    keys = {
        "alpha": key("alpha"),
        "ledger": key("ledger"),
        "restricted": key("restricted"),
        "tiny": key("tiny"),
        "rpm2": key("alpha", "--rpm", "2"),
        "expired": key("alpha", "--expires-at", "2000-01-01T00:00:00"),
        "revoked": key("alpha", "--name", "to-revoke"),
    }
    with upstream(env) as (url, _proc):
        cli("model", "add", "fake-chat", "--upstream", url, "--alias", "default-chat")
        cli("model", "add", "fake-embed", "--upstream", url, "--kind", "embedding")
        cli("model", "add", "small-ctx", "--upstream", url, "--context-length", "64")
        with server({**env, "JAIF_INFERENCE__MAX_BODY_BYTES": str(MAX_BODY)}) as base:
            with httpx.Client(base_url=base, headers=bearer(keys["alpha"]), timeout=30) as http:
                yield {"base": base, "keys": keys, "env": env, "http": http}


def chat(http: httpx.Client, key: str, model: str = "fake-chat", **extra) -> httpx.Response:
    body = {"model": model, "messages": HI, "max_tokens": 5, **extra}
    return http.post("/v1/chat/completions", json=body, headers=bearer(key))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request(gateway, case: Bad):
    error = openai_error(case.send(gateway["http"]), case.status, code=case.code, param=case.param)
    assert case.says.lower() in error["message"].lower(), error


def test_wrong_method_says_what_is_allowed(gateway):
    response = gateway["http"].get("/v1/embeddings")
    openai_error(response, 405)
    assert response.headers["allow"] == "POST"


def test_body_too_large_without_content_length(gateway):
    def pieces():
        yield b'{"model": "fake-chat", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}]}'

    headers = {"content-type": "application/json"}
    response = gateway["http"].post("/v1/chat/completions", content=pieces(), headers=headers)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    openai_error(response, 413, code="payload_too_large")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_api_key"),
        ("", "missing_api_key"),
        ("Basic dXNlcjpwYXNz", "invalid_authorization"),
        ("Bearer", "invalid_authorization"),
        ("Bearer jaif-not-a-key-of-this-server", "invalid_api_key"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions"])
def test_bad_key(gateway, authorization, code, path):
    headers = {} if authorization is None else {"authorization": authorization}
    with httpx.Client(base_url=gateway["base"], headers=headers) as anonymous:
        if path == "/v1/models":
            response = anonymous.get(path)
        else:
            response = anonymous.post(path, json={"model": "fake-chat", "messages": HI})
    error = openai_error(response, 401, code=code)
    assert error["type"] == "authentication_error"


def test_expired_key(gateway):
    error = openai_error(chat(gateway["http"], gateway["keys"]["expired"]), 401, code="expired_api_key")
    assert "expired" in error["message"]


def test_revoked_key(gateway):
    http, key = gateway["http"], gateway["keys"]["revoked"]
    assert chat(http, key).status_code == 200  # now in the server's key cache
    prefix = key[:13]  # "jaif-" and 8 characters, as `jaif key create` and `jaif key list` show it
    wide = {**gateway["env"], "COLUMNS": "200"}  # rich wraps the table at 80 columns in a pipe
    assert prefix in jaif(wide, "key", "list", "--project", "alpha").stdout
    jaif(gateway["env"], "key", "revoke", prefix)
    # Keys are cached for JAIF_INFERENCE__KEY_CACHE_S (2 s by default); past it the revocation holds.
    time.sleep(2.5)
    error = openai_error(chat(http, key), 401, code="revoked_api_key")
    assert "revoked" in error["message"]
    openai_error(http.get("/v1/models", headers=bearer(key)), 401, code="revoked_api_key")


def test_model_not_allowed_for_project(gateway):
    http, key = gateway["http"], gateway["keys"]["restricted"]
    assert chat(http, key).status_code == 200
    error = openai_error(chat(http, key, model="small-ctx"), 403, code="model_not_allowed", param="model")
    assert "restricted" in error["message"] and "small-ctx" in error["message"]
    openai_error(http.get("/v1/models/small-ctx", headers=bearer(key)), 403, code="model_not_allowed")
    embed = http.post("/v1/embeddings", json={"model": "fake-embed", "input": "x"}, headers=bearer(key))
    openai_error(embed, 403, code="model_not_allowed")


def test_quota_exhausted(gateway):
    """A 40-token allowance, spent by real calls (each reserves its prompt bound plus max_tokens) until
    the next one cannot be covered."""
    http, key = gateway["http"], gateway["keys"]["tiny"]
    statuses = []
    for _ in range(10):
        response = chat(http, key)
        statuses.append(response.status_code)
        if response.status_code != 200:
            break
    assert statuses[0] == 200 and statuses[-1] == 429, statuses
    error = openai_error(response, 429, code="insufficient_quota")
    assert "allowance" in error["message"]
    assert int(response.headers["retry-after"]) >= 1
    usage = usage_after(gateway["env"], "tiny", requests=len(statuses) - 1)
    assert usage["tokens_spent"] <= 40 and usage["errors"] == 0


def test_rate_limit_rpm(gateway):
    http, key = gateway["http"], gateway["keys"]["rpm2"]
    for _ in range(2):  # the one-minute window may roll over mid-test; then once more
        window = int(time.time() // 60)
        responses = [chat(http, key) for _ in range(3)]
        if int(time.time() // 60) == window:
            break
    assert [r.status_code for r in responses[:2]] == [200, 200]
    error = openai_error(responses[2], 429, code="rate_limit_exceeded")
    assert error["type"] == "rate_limit_error" and "2 requests" in error["message"]
    assert 1 <= int(responses[2].headers["retry-after"]) <= 60


def test_no_charges_for_bad_requests(gateway):
    """Every bad request on a fresh project, then one good one: the ledger holds only the good one."""
    http, key = gateway["http"], gateway["keys"]["ledger"]
    with httpx.Client(base_url=gateway["base"], headers=bearer(key), timeout=30) as ledger:
        for case in CASES:
            assert case.send(ledger).status_code == case.status, case.id
        ledger.post("/v1/chat/completions", content=b'{"model": ', headers={"content-type": "application/json"})
        good = chat(http, key).json()["usage"]
    usage = usage_after(gateway["env"], "ledger", requests=1)
    assert usage["errors"] == 0
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (good["prompt_tokens"], good["completion_tokens"])
    assert usage["tokens_spent"] == good["total_tokens"]
    assert [m["model"] for m in usage["models"]] == ["fake-chat"]
    # The refusals of the restricted project were not charged either (its one good call was).
    restricted = usage_of(gateway["env"], "restricted")
    assert restricted["errors"] == 0 and restricted["requests"] <= 1


def test_gateway_answers_are_not_sniffed(gateway):
    """Issue 9, item 7: every /v1 answer is nosniff; the hot endpoints (inference/endpoints.py) set it as
    constant bytes, and all /v1 routes pass the app's security headers middleware (web/headers.py)."""
    http, key = gateway["http"], gateway["keys"]["alpha"]
    ok = chat(http, key)
    assert ok.status_code == 200 and ok.headers["x-content-type-options"] == "nosniff"
    streamed = chat(http, key, stream=True)
    assert streamed.status_code == 200 and streamed.headers["x-content-type-options"] == "nosniff"
    refused = chat(http, key, max_tokens=0)
    assert refused.status_code == 400 and refused.headers["x-content-type-options"] == "nosniff"
    models = http.get("/v1/models")
    assert models.status_code == 200 and models.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in models.headers["content-security-policy"]
