"""What /v1 answers, for jaif's OpenAPI document: the OpenAI objects a client gets back, and errors.

These models only describe; the hot path never builds them (bodies are plain dicts serialised with
orjson). They follow the official OpenAI API document in the fields jaif always sends, and allow the
extra fields an upstream (vLLM, llama.cpp, ...) may add, which jaif passes through.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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


class Model(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Open):
    object: Literal["list"]
    data: list[Model]


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessage(_Open):
    role: Literal["assistant"]
    content: str | None = None


class ChatChoice(_Open):
    index: int
    message: ChatMessage
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


class ChatDelta(_Open):
    role: str | None = None
    content: str | None = None


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


REF_TEMPLATE = "#/components/schemas/{model}"


def responses(success: type[BaseModel], *, stream: type[BaseModel] | None = None) -> dict:
    """The `responses` of one route: the success object, each server-sent event of a stream (its `data`
    is the JSON of one chunk, or `[DONE]` last), and the errors."""
    ok: dict[str, Any] = {"model": success, "description": (success.__doc__ or "OK").strip()}
    if stream is not None:
        event = {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "description": f"a {stream.__name__} as JSON; the last event's data is `[DONE]`",
                    "anyOf": [
                        {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {"$ref": REF_TEMPLATE.format(model=stream.__name__)},
                        },
                        {"const": "[DONE]"},
                    ],
                },
                "event": {"type": "string"},
                "id": {"type": "string"},
            },
        }
        ok["content"] = {"text/event-stream": {"schema": event}}
    out: dict[int | str, dict[str, Any]] = {200: ok}
    out.update({status: {"model": ErrorResponse, "description": why} for status, why in _ERRORS.items()})
    return out


def components() -> dict:
    """Schemas only the stream descriptions name, for app.openapi to add (FastAPI adds the rest)."""
    schema = ChatCompletionChunk.model_json_schema(ref_template=REF_TEMPLATE)
    defs = schema.pop("$defs", {})
    return {**defs, ChatCompletionChunk.__name__: schema}
