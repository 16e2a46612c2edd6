"""The OpenAPI document declares the OpenAI request fields the gateway accepts (issue 13), and the answer's
message has a schema of its own (tool calls, refusal), not the request's ChatMessage."""

from __future__ import annotations

import pytest

from jaif.app import create_app
from jaif.config import Settings

CHAT_FIELDS = {"tools", "tool_choice", "response_format", "logprobs", "top_logprobs", "logit_bias",
               "parallel_tool_calls", "functions", "function_call", "max_completion_tokens", "seed", "n",
               "stream_options"}  # fmt: skip
COMPLETION_FIELDS = {"logprobs", "logit_bias", "echo", "suffix", "best_of", "seed", "n"}


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("doc")
    settings = Settings(database_url=f"sqlite:///{tmp}/jaif.db", data_dir=tmp / "var")
    return create_app(settings).openapi()


def request_schema(document: dict, path: str) -> dict:
    return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def resolve(document: dict, schema: dict) -> dict:
    """A schema, following a $ref, or the one object member of an anyOf (an optional field)."""
    if "$ref" in schema:
        return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    refs = [s for s in schema.get("anyOf", ()) if "$ref" in s]
    return resolve(document, refs[0]) if refs else schema


def test_chat_and_completion_requests_declare_what_the_gateway_accepts(document):
    chat = request_schema(document, "/v1/chat/completions")["properties"]
    assert CHAT_FIELDS <= set(chat)
    tool = resolve(document, chat["tools"]["anyOf"][0]["items"])
    assert {"type", "function"} <= set(tool["properties"])
    assert {"name", "parameters", "strict"} <= set(resolve(document, tool["properties"]["function"])["properties"])
    choice = chat["tool_choice"]["anyOf"]
    assert {"none", "auto", "required"} <= {v for s in choice for v in s.get("enum", ())}
    assert "json_schema" in resolve(document, chat["response_format"])["properties"]
    assert chat["top_logprobs"]["anyOf"][0]["maximum"] == 20
    assert COMPLETION_FIELDS <= set(request_schema(document, "/v1/completions")["properties"])
    # A message sent back as history may carry the assistant's tool calls, or answer one.
    message = document["components"]["schemas"]["ChatMessage"]["properties"]
    assert {"tool_calls", "tool_call_id"} <= set(message)


def test_the_answer_message_and_the_stream_delta_have_tool_calls_and_refusal(document):
    schemas = document["components"]["schemas"]
    message_ref = schemas["ChatChoice"]["properties"]["message"]["$ref"]
    assert message_ref != "#/components/schemas/ChatMessage"
    message = resolve(document, {"$ref": message_ref})
    assert {"role", "content", "refusal", "tool_calls"} <= set(message["properties"])
    call = resolve(document, message["properties"]["tool_calls"]["anyOf"][0]["items"])
    assert {"id", "type", "function"} <= set(call["properties"])
    delta = schemas["ChatDelta"]["properties"]
    assert {"content", "refusal", "tool_calls"} <= set(delta)
    assert "index" in resolve(document, delta["tool_calls"]["anyOf"][0]["items"])["required"]


def test_rerank_tokenize_and_detokenize_are_documented(document):
    assert set(request_schema(document, "/v1/rerank")["required"]) == {"model", "query", "documents"}
    assert {"prompt", "messages", "add_special_tokens"} <= set(request_schema(document, "/v1/tokenize")["properties"])
    assert set(request_schema(document, "/v1/detokenize")["required"]) == {"model", "tokens"}
    schemas = document["components"]["schemas"]
    assert {"index", "relevance_score", "document"} <= set(schemas["RerankResult"]["properties"])
    assert {"count", "max_model_len", "tokens"} <= set(schemas["TokenizeResponse"]["required"])
