"""The rest of the OpenAI-compatible surface (issue 13) against a real `jaif serve` and a stand-in upstream
(jaif.testing.upstream, which serves vLLM's /tokenize, /detokenize, /v1/rerank and /v1/responses), driven by
the official openai SDK (its generic ``post`` where it has no method):

- /tokenize and /detokenize (also under /v1): passed through, key-authenticated, scoped to the project's
  models, never charged;
- /v1/rerank for a model added with ``--kind rerank``: passed through and metered; kinds never mix;
- /v1/responses passed through to a model added with ``--responses-api native``, plain and streamed,
  metered from the upstream's usage; other models keep the translation onto chat completions.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.support.api import bearer, openai_error
from tests.support.databases import one_database
from tests.support.gateway import usage_records, wait_served
from tests.support.procs import jaif, last_line, server, upstream, wait_for
from tests.support.services import Cli

pytestmark = one_database()


@pytest.fixture(scope="module")
def gateway(module_env):
    env = module_env
    cli = Cli(env)  # the set-up through the CLI's own code, in-process: a second a command less
    cli("org", "create", "Uni A", "--sector", "academia", "--country", "DE")
    cli("project", "create", "alpha", "--org", "Uni A")
    cli("project", "create", "beta", "--org", "Uni A", "--allow-model", "fake-chat")
    key, key_b = (last_line(cli("key", "create", "--project", p)) for p in ("alpha", "beta"))
    with upstream(env) as (url, _proc):
        cli("model", "add", "fake-chat", "--upstream", url)
        cli("model", "add", "tok-chat", "--upstream", url)
        cli("model", "add", "fake-rerank", "--upstream", url, "--kind", "rerank")
        cli("model", "add", "native-chat", "--upstream", url, "--responses-api", "native")
        with server(env) as base:
            wait_served(base, "native-chat", replicas=1)
            client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
            root = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=30)
            yield {"base": base, "key": key, "key_b": key_b, "env": env, "db": env["JAIF_DATABASE_URL"],
                   "client": client, "root": root}  # fmt: skip
            client.close()
            root.close()


def new_records(gateway, model: str, before: int, count: int = 1) -> list:
    """The ``count`` usage records of ``model`` written after the first ``before``."""
    want = before + count
    rows = wait_for(lambda: usage_records(gateway["db"], model=model), lambda r: len(r) >= want, timeout=15)
    assert len(rows) == want, rows
    return rows[before:]


def seen(gateway, model: str) -> int:
    return len(usage_records(gateway["db"], model=model))


# -- /tokenize and /detokenize ------------------------------------------------------------------------------
def test_tokenize_and_detokenize_pass_through_at_vllms_paths_and_under_v1(gateway):
    for client, path in ((gateway["root"], "/tokenize"), (gateway["client"], "/tokenize")):
        out = client.post(path, body={"model": "tok-chat", "prompt": "hello big world"}, cast_to=object)
        assert out == {"count": 3, "max_model_len": 4096, "tokens": [5104, 3098, 5119], "token_strs": None}
    chat = gateway["root"].post(
        "/tokenize", body={"model": "tok-chat", "messages": [{"role": "user", "content": "hi you"}]}, cast_to=object
    )
    assert chat["count"] == 2
    text = gateway["client"].post("/detokenize", body={"model": "tok-chat", "tokens": [5104, 7]}, cast_to=object)
    assert text == {"prompt": "w5104 w7"}


def test_tokenize_is_not_charged(gateway):
    before = seen(gateway, "tok-chat")
    gateway["client"].post("/tokenize", body={"model": "tok-chat", "prompt": "a b c"}, cast_to=object)
    gateway["client"].post("/detokenize", body={"model": "tok-chat", "tokens": [1]}, cast_to=object)
    gateway["client"].chat.completions.create(model="tok-chat", messages=[{"role": "user", "content": "x"}])
    # The chat completion's record is written with (or after) anything the two before it could have written.
    [row] = new_records(gateway, "tok-chat", before)
    assert row.endpoint == "chat.completions"


@pytest.mark.parametrize("path", ["/tokenize", "/v1/tokenize", "/detokenize", "/v1/detokenize"])
def test_token_endpoints_answer_errors_in_the_openai_shape(gateway, path):
    http = httpx.Client(base_url=gateway["base"], timeout=30)
    body = {"model": "tok-chat", "prompt": "x"} if "/tokenize" in path else {"model": "tok-chat", "tokens": [1]}
    openai_error(http.post(path, json=body), 401)
    # Project beta may use fake-chat only.
    openai_error(http.post(path, json=body, headers=bearer(gateway["key_b"])), 403, code="model_not_allowed")
    openai_error(http.post(path, json={**body, "model": "nope"}, headers=bearer(gateway["key"])), 404)
    bad = {"model": "tok-chat"} if "/tokenize" in path else {"model": "tok-chat", "tokens": [-1]}
    openai_error(http.post(path, json=bad, headers=bearer(gateway["key"])), 400)
    http.close()


# -- /v1/rerank ---------------------------------------------------------------------------------------------
def test_rerank_is_passed_through_and_metered(gateway):
    before = seen(gateway, "fake-rerank")
    documents = ["the cat sat", "dogs bark loudly", "a cat and a dog"]
    out = gateway["client"].post(
        "/rerank", body={"model": "fake-rerank", "query": "cat dog", "documents": documents, "top_n": 2,
                         "return_documents": True}, cast_to=object,
    )  # fmt: skip
    assert [r["index"] for r in out["results"]] == [2, 0]
    assert out["results"][0]["document"] == {"text": "a cat and a dog"} and out["results"][0]["relevance_score"] == 1
    total = 3 * 2 + 3 + 3 + 5
    assert out["usage"]["total_tokens"] == total
    [row] = new_records(gateway, "fake-rerank", before)
    assert (row.endpoint, row.prompt_tokens, row.completion_tokens, row.status) == ("rerank", total, 0, "ok")


def test_rerank_and_chat_models_do_not_mix(gateway):
    client = gateway["client"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/rerank", body={"model": "fake-chat", "query": "q", "documents": ["d"]}, cast_to=object)
    assert caught.value.body["code"] == "wrong_model_kind" and "/v1/rerank" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="fake-rerank", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "wrong_model_kind" and "rerank model" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="fake-rerank", input="hi")
    assert caught.value.body["code"] == "wrong_model_kind"
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/rerank", body={"model": "fake-rerank", "query": "q", "documents": []}, cast_to=object)
    assert caught.value.body["param"] == "documents"


# -- /v1/responses passed through ---------------------------------------------------------------------------
def test_responses_pass_through_to_a_native_model_and_are_metered(gateway):
    before = seen(gateway, "native-chat")
    response = gateway["client"].responses.create(model="native-chat", input="hello there", max_output_tokens=4)
    assert response.id == "resp_fake"  # the upstream's own response, not one jaif made
    assert response.output_text == "tok0 tok1 tok2 tok3"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (2, 4)
    [row] = new_records(gateway, "native-chat", before)
    assert (row.endpoint, row.prompt_tokens, row.completion_tokens, row.stream) == ("responses", 2, 4, False)
    # A background response would be answered at once and generated unmetered upstream: refused, as translated.
    with pytest.raises(openai.BadRequestError) as refused:
        gateway["client"].responses.create(model="native-chat", input="hello", background=True)
    assert refused.value.body["param"] == "background"


def test_a_responses_stream_passes_through_with_its_typed_events(gateway):
    before = seen(gateway, "native-chat")
    events = list(gateway["client"].responses.create(model="native-chat", input="one two three", stream=True,
                                                     max_output_tokens=3))  # fmt: skip
    assert [e.type for e in events] == ["response.created"] + ["response.output_text.delta"] * 3 + [
        "response.completed"
    ]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "tok0 tok1 tok2"
    [row] = new_records(gateway, "native-chat", before)
    assert (row.endpoint, row.prompt_tokens, row.completion_tokens, row.status, row.stream) == (
        "responses", 3, 3, "ok", True
    )


def test_other_models_keep_the_translation_onto_chat_completions(gateway):
    before = seen(gateway, "fake-chat")
    response = gateway["client"].responses.create(model="fake-chat", input="hello", max_output_tokens=2)
    assert response.id != "resp_fake" and response.output_text == "tok0 tok1"
    [row] = new_records(gateway, "fake-chat", before)
    assert row.endpoint == "chat.completions"
    with pytest.raises(openai.BadRequestError) as caught:
        gateway["client"].responses.create(model="fake-rerank", input="hello")
    assert caught.value.body["code"] == "wrong_model_kind"


def test_the_responses_api_flag_is_checked_and_listed(gateway):
    env = gateway["env"]
    failed = jaif(env, "model", "add", "bad", "--upstream", "http://127.0.0.1:9/v1", "--responses-api", "maybe",
                  check=False)  # fmt: skip
    assert failed.returncode != 0 and "translate or native" in failed.stdout + failed.stderr
    listed = {m["name"]: m["responses_api"] for m in json.loads(last_line(jaif(env, "model", "list", "--json")))}
    assert listed["native-chat"] == "native" and listed["fake-chat"] == "translate"
