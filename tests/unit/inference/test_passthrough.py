"""The pure parts of the Responses API passthrough (inference/passthrough.py) and of rerank's budget."""

from __future__ import annotations

import orjson
import pytest

from jaif.errors import JaifError
from jaif.inference.passthrough import ResponsesMeter, budget, chat_usage, output_text
from jaif.inference.prompt_size import RERANK_PAIR_TOKENS, measure
from jaif.inference.protocol import EmbeddingRequest, RerankRequest, parse_request
from jaif.inference.tokenizers import prompt_texts


def test_the_responses_usage_is_metered_as_prompt_and_completion_tokens():
    assert chat_usage({"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}) == {
        "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10
    }  # fmt: skip
    assert chat_usage(None) is None and chat_usage({"input_tokens": 7}) is None


def test_the_budget_is_the_input_and_max_output_tokens_within_the_context():
    assert budget({"max_output_tokens": 100}, 50, 4096) == 150
    assert budget({"max_output_tokens": 10_000}, 50, 4096) == 4096
    assert budget({}, 50, 4096) == 4096  # no output limit: the whole context
    assert budget({"max_output_tokens": 10, "previous_response_id": "resp_1"}, 50, 4096) == 4096


def test_the_meter_frames_typed_events_and_keeps_the_final_usage():
    meter = ResponsesMeter(started=0.0)
    delta = orjson.dumps({"type": "response.output_text.delta", "delta": "hi", "sequence_number": 4})
    assert meter.feed(delta) == b"event: response.output_text.delta\ndata: " + delta + b"\n\n"
    assert meter.usage is None and meter.text() == "hi" and meter.ttft_s is not None
    final = {"type": "response.completed", "sequence_number": 5,
             "response": {"usage": {"input_tokens": 2, "output_tokens": 1, "total_tokens": 3}}}  # fmt: skip
    meter.feed(orjson.dumps(final))
    assert meter.usage == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    error = orjson.loads(meter.error_event("broke").split(b"data: ")[1])
    assert error["type"] == "error" and error["sequence_number"] == 6
    assert meter.feed(b"not json") == b"event: message\ndata: not json\n\n"


def test_output_text_reads_messages_and_function_arguments():
    response = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "a"}]},
                           {"type": "function_call", "arguments": "{}"}]}  # fmt: skip
    assert output_text(response) == "a{}"


def test_a_rerank_reserves_the_query_once_per_document():
    request = RerankRequest(model="r", query="abc", documents=["de", "fgh"])
    size = measure(request)
    assert (size.items, size.size) == (2, 8)
    assert size.upper_bound == 5 + 2 * (3 + RERANK_PAIR_TOKENS)


def test_a_streamed_embedding_or_rerank_is_refused_naming_the_parameter():
    # Neither can be streamed; before, stream: true on /v1/embeddings passed validation as an unknown field
    # and the gateway tried to relay a stream from the engine.
    for model, body in ((EmbeddingRequest, b'{"model": "e", "input": "hi", "stream": true}'),
                        (RerankRequest, b'{"model": "r", "query": "q", "documents": ["d"], "stream": true}')):
        with pytest.raises(JaifError) as refused:
            parse_request(model, body)
        assert refused.value.status == 400 and refused.value.param == "stream"
    assert parse_request(EmbeddingRequest, b'{"model": "e", "input": "hi", "stream": false}').stream is False


def test_a_passed_through_responses_prompt_is_counted_from_its_instructions_and_items():
    # Review: a list input and instructions were counted as nothing where the engine reported no usage
    # (a cancelled stream), so only the output was charged.
    body = {"instructions": "Be brief.", "input": [
        {"role": "user", "content": "first question"},
        {"role": "user", "content": [{"type": "input_text", "text": "second"},
                                     {"type": "input_text", "text": " part"}]},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
    ]}
    assert prompt_texts("responses", body) == ["Be brief.", "first question", "second part", "42"]
    assert prompt_texts("responses", {"input": "plain"}) == ["", "plain"]
