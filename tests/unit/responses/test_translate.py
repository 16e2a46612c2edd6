"""Responses API <-> chat completions: the translation of input items, tools and a stream of chat chunks."""

from __future__ import annotations

import orjson
import pytest

from jaif.errors import InvalidRequest
from jaif.responses.schemas import ResponseCreate
from jaif.responses.stream import ResponseStream
from jaif.responses.translate import chat_messages, chat_request, input_items


def test_function_calls_and_their_outputs_become_tool_calls_and_tool_messages():
    create = ResponseCreate(model="m", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "[]"},
        {"type": "function_call_output", "call_id": "c1", "output": "1"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "2"}]},
    ])  # fmt: skip
    items = input_items(create)
    assert all(item["id"] for item in items)
    assert chat_messages(items) == [
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "[]"}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        {"role": "tool", "tool_call_id": "c2", "content": "2"},
    ]  # fmt: skip


def test_parameters_map_onto_chat():
    create = ResponseCreate(
        model="m", input="hi", instructions="be brief", max_output_tokens=9, temperature=0.5, top_p=0.9, stream=True,
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
        tool_choice={"type": "function", "name": "f"},
        text={"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
    )  # fmt: skip
    body = chat_request(create, [{"role": "assistant", "content": "earlier"}], input_items(create)).model_dump(
        exclude_unset=True
    )
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "assistant", "content": "earlier"},
                                {"role": "user", "content": "hi"}]  # fmt: skip
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (9, 0.5, 0.9)
    assert body["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"},
                                                               "strict": True}}]  # fmt: skip
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    schema = {"name": "x", "schema": {"type": "object"}}
    assert body["response_format"] == {"type": "json_schema", "json_schema": schema}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image"}]}]},
         "input[0].output"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
         "input[0].content[0].type"),
    ],
)
def test_what_cannot_be_translated_is_refused_by_name(fields, param):
    create = ResponseCreate(**{"model": "m", "input": "x", **fields})
    with pytest.raises(InvalidRequest) as caught:
        chat_request(create, [], input_items(create))
    assert caught.value.param == param


class FakeRelay:
    """The part of the gateway's StreamRelay a ResponseStream uses."""

    def __init__(self, chunks: list[dict]) -> None:
        self.chunks = chunks
        self.closed = False
        self.events = self._events()

    async def _events(self):
        for chunk in self.chunks:
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"

    async def usage(self) -> dict:
        return {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}

    async def aclose(self) -> None:
        self.closed = True


async def events_of(chunks: list[dict]) -> tuple[list[dict], list[dict]]:
    stored: list[dict] = []

    async def store(final: dict) -> None:
        stored.append(final)

    relay = FakeRelay(chunks)
    stream = ResponseStream(ResponseCreate(model="m", input="x"), "resp_1", relay, store)  # type: ignore[arg-type]
    raw = b"".join([event async for event in stream.events])
    await stream.aclose()
    assert relay.closed
    events = []
    for event in filter(None, raw.split(b"\n\n")):
        kind, data = event.split(b"\n")
        events.append(orjson.loads(data.removeprefix(b"data: ")))
        assert kind == b"event: " + events[-1]["type"].encode()
    return events, stored


def delta(**fields) -> dict:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


async def test_text_then_a_tool_call_are_two_output_items_in_order():
    events, stored = await events_of([
        delta(role="assistant", content="Let me look."),
        delta(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{\"a\""}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}]),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    ])  # fmt: skip
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed" and stored == [final]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][0]["content"][0]["text"] == "Let me look."
    assert final["output"][1]["arguments"] == '{"a": 1}' and final["output"][1]["call_id"] == "c1"
    # The message is done before the call is added.
    kinds = [event["type"] for event in events]
    assert kinds.index("response.output_item.done") < kinds.index("response.function_call_arguments.delta")
    assert final["usage"]["total_tokens"] == 5


async def test_a_stream_cut_at_the_output_limit_is_incomplete():
    cut = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    events, stored = await events_of([delta(content="a"), cut])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"} and stored


async def test_a_stream_that_breaks_ends_failed_and_is_not_stored():
    events, stored = await events_of([delta(content="a"), {"error": {"message": "The model server failed mid-stream"}}])
    assert [event["type"] for event in events[-2:]] == ["error", "response.failed"]
    assert events[-1]["response"]["status"] == "failed" and "mid-stream" in events[-1]["response"]["error"]["message"]
    assert stored == []
