"""The /v1 part of jaif's OpenAPI document: the OpenAI objects a client gets back, errors, and the hot
operations (chat completions, completions, embeddings, rerank).

These models only describe; the hot path never builds them (bodies are plain dicts serialised with
orjson). They follow the official OpenAI API document in the fields jaif always sends, and allow the
extra fields an upstream (vLLM, llama.cpp, ...) may add, which jaif passes through.

FastAPI documents the routes it serves (GET /v1/models). The hot operations are plain ASGI endpoints
(inference/endpoints.py) that FastAPI does not see; ``add_hot_operations`` writes them into the document
the same way: request body, answers, the bearer key.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi.encoders import jsonable_encoder
from fastapi.openapi.models import OpenAPI
from pydantic import BaseModel, ConfigDict, Field

from jaif.inference.protocol import (
    DOCUMENTED,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    RerankRequest,
)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx of /v1, in the OpenAI shape."""

    error: ErrorDetail


class ModelStatus(_Open):
    """jaif's addition: whether the model can answer now."""

    state: Literal["ready", "starting", "cold", "unavailable"] = Field(
        description="ready; starting (a deployment's replica is on its way) or cold (a deployment scaled to "
                    "zero: a request starts a replica and is held until it answers); unavailable (no healthy "
                    "replica of a model jaif does not run itself)")
    ready_replicas: int
    estimated_ready_s: float | None = Field(None, description="While starting or cold: about how long until ready.")
    reason: str | None = Field(None, description="Why a deployment is unavailable.")


class Model(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    status: ModelStatus | None = None


class ModelList(_Open):
    object: Literal["list"]
    data: list[Model]


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class FunctionCall(_Open):
    name: str
    arguments: str = Field(description="the arguments, as a JSON string (the model's: validate before use)")


class MessageToolCall(_Open):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatCompletionMessage(_Open):
    """The message a model answers with (not the request's ChatMessage): text, a refusal, or tool calls."""

    role: Literal["assistant"]
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[MessageToolCall] | None = None


class ChatChoice(_Open):
    index: int
    message: ChatCompletionMessage
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(_Open):
    """A non-streaming answer of /v1/chat/completions."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


class FunctionCallDelta(_Open):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Open):
    """A piece of a tool call: the first names it (``id``, ``function.name``), the rest add ``arguments``."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class ChatDelta(_Open):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChatChunkChoice(_Open):
    index: int
    delta: ChatDelta
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    """One `data:` event of a /v1/chat/completions stream. The stream ends with `data: [DONE]`; with
    `stream_options.include_usage` the last chunk before it has `choices: []` and the usage."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChoice(_Open):
    index: int
    text: str
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class Completion(_Open):
    """A non-streaming answer of /v1/completions; a stream sends objects of the same shape, one per
    `data:` event, ending with `data: [DONE]`."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class EmbeddingUsage(_Open):
    prompt_tokens: int
    total_tokens: int


class Embedding(_Open):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 when encoding_format is base64")


class EmbeddingList(_Open):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class RerankDocument(_Open):
    text: str


class RerankResult(_Open):
    index: int = Field(description="the document's position in the request's `documents`")
    relevance_score: float
    document: RerankDocument | None = Field(None, description="with return_documents")


class RerankUsage(_Open):
    total_tokens: int


class RerankResponse(_Open):
    """The documents' scores against the query, best first (Cohere's and Jina's shape, as vLLM serves it)."""

    id: str
    model: str
    usage: RerankUsage
    results: list[RerankResult]


class TokenizeResponse(_Open):
    """The prompt's token ids, as the model reads them (vLLM's /tokenize)."""

    count: int
    max_model_len: int = Field(description="the model's context length: prompt and completion together")
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeResponse(_Open):
    """The text of the token ids (vLLM's /detokenize)."""

    prompt: str


REF_TEMPLATE = "#/components/schemas/{model}"

_ERRORS = {
    400: "invalid request: malformed JSON, wrong types, a prompt or max_tokens past the context length",
    401: "missing, unknown, revoked or expired API key",
    403: "the project may not use this model",
    404: "unknown model",
    413: "request body too large",
    429: "token allowance used up, or the key's rate limit (with Retry-After)",
    502: "the model server failed",
    503: "no healthy replica (with Retry-After)",
}


def responses(success: type[BaseModel], *, stream: type[BaseModel] | None = None, done: bool = True) -> dict:
    """The `responses` of one route: the success object, each server-sent event of a stream (its `data`
    is the JSON of one chunk, or `[DONE]` last unless ``done`` is false), and the errors."""
    ok: dict[str, Any] = {"model": success, "description": (success.__doc__ or "OK").strip()}
    if stream is not None:
        data: dict[str, Any] = {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": REF_TEMPLATE.format(model=stream.__name__)},
        }
        event = {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "description": f"a {stream.__name__} as JSON; the last event's data is `[DONE]`",
                    "anyOf": [data, {"const": "[DONE]"}],
                }
                if done
                else {**data, "description": f"a {stream.__name__} as JSON"},
                "event": {"type": "string"},
                "id": {"type": "string"},
            },
        }
        ok["content"] = {"text/event-stream": {"schema": event}}
    out: dict[int | str, dict[str, Any]] = {200: ok}
    out.update({status: {"model": ErrorResponse, "description": why} for status, why in _ERRORS.items()})
    return out


TAG = "OpenAI-compatible inference"
BEARER_DESCRIPTION = "A project API key, created with `jaif key create`."
# The hot operations: (path, name, summary, request body, 200 object, stream event object). The one list
# of them: inference/endpoints.py mounts a route for each.
HOT_OPERATIONS: tuple[tuple[str, str, str, type[BaseModel], type[BaseModel], type[BaseModel] | None], ...] = (
    ("/v1/chat/completions", "chat_completions", "Create a chat completion", ChatCompletionRequest,
     ChatCompletion, ChatCompletionChunk),
    ("/v1/completions", "completions", "Create a text completion", CompletionRequest, Completion, Completion),
    ("/v1/embeddings", "embeddings", "Create embeddings", EmbeddingRequest, EmbeddingList, None),
    ("/v1/rerank", "rerank", "Rerank documents against a query", RerankRequest, RerankResponse, None),
)  # fmt: skip


# One hot operation, as in HOT_OPERATIONS: (path, name, summary, request body, 200 object, stream event).
HotOp = tuple[str, str, str, type[BaseModel], type[BaseModel], type[BaseModel] | None]


def add_hot_operations(document: dict, extra: tuple[tuple[HotOp, bool], ...] = ()) -> dict:
    """Write the hot operations, and every schema they name, into FastAPI's ``document``; returns it.
    ``extra``: more hot operations (POST /v1/responses), each with whether its stream ends with [DONE].

    The operations and the objects they answer go through FastAPI's model of the document, as
    get_openapi puts every route it documents; the stream events and the request body's parts are
    added as pydantic writes them."""
    operations, answers, as_written = {}, {}, {}
    for (path, name, summary, body, success, stream), done in [*((op, True) for op in HOT_OPERATIONS), *extra]:
        operations[path] = {"post": _operation(path, name, summary, body, success, stream, done)}
        answers.update({**_schemas(success), **_schemas(ErrorResponse)})
        if stream is not None and stream is not success:
            as_written.update(_schemas(stream))
        as_written.update(body.model_json_schema(ref_template=REF_TEMPLATE).get("$defs", {}))  # the body is inline
    for name, schema in as_written.items():  # the documented-only fields of a request's parts (ChatMessage)
        _document(name, schema)
    for options in DOCUMENTED.values():  # and the schemas those fields name (Tool, ToolCall, ...)
        as_written.update(options.model_json_schema(ref_template=REF_TEMPLATE).get("$defs", {}))
    written = OpenAPI.model_validate(
        {"openapi": document["openapi"], "info": document["info"], "paths": operations,
         "components": {"schemas": answers}}
    )  # fmt: skip
    written_out = jsonable_encoder(written, by_alias=True, exclude_none=True)
    document.setdefault("paths", {}).update(written_out["paths"])
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update({**written_out["components"]["schemas"], **as_written})
    components.setdefault("securitySchemes", {})["HTTPBearer"] = {
        "type": "http", "description": BEARER_DESCRIPTION, "scheme": "bearer",
    }  # fmt: skip
    return document


def _operation(
    path: str, name: str, summary: str, body: type[BaseModel], success: type[BaseModel],
    stream: type[BaseModel] | None, done: bool = True,
) -> dict:  # fmt: skip
    request = body.model_json_schema(ref_template=REF_TEMPLATE)
    request.pop("$defs", None)
    _document(body.__name__, request)
    answers = {}
    for status, answer in responses(success, stream=stream, done=done).items():
        content: dict[str, Any] = {"application/json": {"schema": _ref(answer["model"])}}
        content.update(answer.get("content", {}))
        answers[str(status)] = {"description": answer["description"], "content": content}
    return {
        "tags": [TAG],
        "summary": summary,
        # As FastAPI names an operation: the route's name, its path, the method.
        "operationId": re.sub(r"\W", "_", f"{name}{path}") + "_post",
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": answers,
        "security": [{"HTTPBearer": []}],
    }


def _document(name: str, schema: dict) -> None:
    """Write the fields protocol.DOCUMENTED gives the schema ``name`` (documented, not validated) into it."""
    options = DOCUMENTED.get(name)
    if options is not None:
        schema.setdefault("properties", {}).update(options.model_json_schema(ref_template=REF_TEMPLATE)["properties"])


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _schemas(model: type[BaseModel]) -> dict:
    """``model``'s schema (as an answer) and those it refers to, by name, for components.schemas."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode="serialization")
    defs = schema.pop("$defs", {})
    return {**defs, model.__name__: schema}
