"""Pydantic mirrors of the OpenAI request schemas jaif accepts.

Unknown fields are kept (extra="allow") and passed to upstreams untouched, so clients can use engine
options jaif does not know; the fields jaif reads are validated strictly enough to answer 400 early.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jaif.errors import InvalidRequest, validation_error

# What a JSON integer may be on its way upstream: orjson, and engines, carry 64 bits.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1, strict=True)]
# Token counts and flags are strict: `"max_tokens": true` or `"stream": "yes"` are mistakes to report,
# not values to guess at.
TokenCount = Annotated[int, Field(ge=1, strict=True)]
Flag = Annotated[bool, Field(strict=True)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1, max_length=200)]
    user: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: Flag | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class FunctionDefinition(BaseModel):
    """A function the model may call: its JSON schema ``parameters`` are passed on as they are."""

    model_config = ConfigDict(extra="allow")
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: Flag | None = None


class Tool(BaseModel):
    """A tool the model may call: OpenAI's ``function`` tools (engines may know other types)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="function (others are passed on to engines that know them)")
    function: FunctionDefinition | None = None


class FunctionName(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


class NamedToolChoice(BaseModel):
    """Force one tool: ``{"type": "function", "function": {"name": ...}}``."""

    model_config = ConfigDict(extra="allow")
    type: str
    function: FunctionName | None = None


class ToolCallFunction(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str | None = None
    arguments: str | None = Field(None, description="the arguments, as a JSON string")


class ToolCall(BaseModel):
    """A tool call the model made (in an assistant message sent back as history)."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    type: str | None = None
    function: ToolCallFunction | None = None


class ResponseFormat(BaseModel):
    """``text``, ``json_object`` or ``json_schema`` (with ``json_schema``: ``name``, ``schema``, ``strict``)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="text, json_object or json_schema")
    json_schema: dict[str, Any] | None = None


class MessageOptions(BaseModel):
    """A chat message's fields for tool calling (documented only: DOCUMENTED)."""

    tool_calls: list[ToolCall] | None = Field(None, description="an assistant's tool calls, sent back as history")
    tool_call_id: str | None = Field(None, description="a tool message's: the call it answers")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if self.content is None:
            return ""
        return "".join(part.text or "" for part in self.content if part.type == "text")


class _Sampling(_Request):
    max_tokens: TokenCount | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    # Choices per prompt (OpenAI's bound). Passed on to engines; each choice is metered and reserved for.
    n: Annotated[int, Field(ge=1, le=128, strict=True)] | None = None
    stop: str | list[str] | None = None
    seed: Int64 | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    stream: Flag | None = False
    stream_options: StreamOptions | None = None


LogitBias = dict[str, Annotated[float, Field(ge=-100, le=100)]]


class ChatOptions(BaseModel):
    """The chat completion options engines read beyond sampling (documented only: DOCUMENTED)."""

    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: Flag | None = None
    response_format: ResponseFormat | None = None
    logprobs: Flag | None = Field(None, description="return each output token's log-probability")
    top_logprobs: Annotated[int, Field(ge=0, le=20, strict=True)] | None = Field(
        None, description="with logprobs: the most likely alternatives per token")
    logit_bias: LogitBias | None = Field(None, description="token id (as a string) -> bias from -100 to 100")
    functions: list[FunctionDefinition] | None = Field(None, description="the legacy form of tools")
    function_call: Literal["none", "auto"] | FunctionName | None = Field(
        None, description="the legacy form of tool_choice")


class CompletionOptions(BaseModel):
    """The completion options engines read beyond sampling (documented only: DOCUMENTED)."""

    logprobs: Annotated[int, Field(ge=0, strict=True)] | None = Field(
        None, description="how many alternatives to report per token")
    logit_bias: LogitBias | None = Field(None, description="token id (as a string) -> bias from -100 to 100")
    echo: Flag | None = None
    suffix: str | None = None
    best_of: Annotated[int, Field(ge=1, le=128, strict=True)] | None = None




class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: TokenCount | None = None

    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def output_limit_param(self) -> str:
        return "max_completion_tokens" if self.max_completion_tokens else "max_tokens"


class CompletionRequest(_Sampling):
    prompt: str | list[str]

    def output_limit(self) -> int | None:
        return self.max_tokens

    def output_limit_param(self) -> str:
        return "max_tokens"


class WithoutOutput(_Request):
    """A request that generates nothing: its prompt is all it costs (embeddings, rerank)."""


# Fields the OpenAPI document gives a schema (by its name) beside its own (inference/openapi.py writes them
# in). They are documented, not validated here: as fields of the request models pydantic would fill in each
# one's default on every request (0.4-0.6 µs more per chat completion, measured), so they stay unknown
# fields, passed on to the engine as sent, which checks them (the built-in chat model in
# backends/builtin_options.py, with a 400 naming the parameter).
DOCUMENTED: dict[str, type[BaseModel]] = {
    "ChatMessage": MessageOptions, "ChatCompletionRequest": ChatOptions, "CompletionRequest": CompletionOptions,
}


class EmbeddingRequest(WithoutOutput):
    input: (
        str
        | Annotated[list[str], Field(min_length=1)]
        | Annotated[list[Int64], Field(min_length=1)]
        | Annotated[list[Annotated[list[Int64], Field(min_length=1)]], Field(min_length=1)]
    )
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: Annotated[int, Field(ge=1, le=2**31)] | None = None
    stream: Literal[False] | None = Field(None, description="embeddings are never streamed")


class RerankRequest(WithoutOutput):
    """POST /v1/rerank, the shape of Cohere's and Jina's rerank APIs as vLLM and text-embeddings-inference
    serve them: score each of ``documents`` against ``query``."""

    query: Annotated[str, Field(min_length=1)]
    documents: Annotated[list[str], Field(min_length=1)]
    top_n: Annotated[int, Field(ge=0, strict=True)] | None = Field(
        None, description="return the best top_n results only (0 or unset: all)")
    return_documents: Flag | None = Field(None, description="include each document's text in its result")
    stream: Literal[False] | None = Field(None, description="a rerank is never streamed")


class TokenizeRequest(BaseModel):
    """POST /tokenize (and /v1/tokenize), as vLLM serves it: a ``prompt``, or chat ``messages`` rendered
    with the model's chat template."""

    model_config = ConfigDict(extra="allow")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    prompt: str | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | None = None
    add_special_tokens: Flag | None = Field(
        None, description="add the model's special tokens (BOS); default true for a prompt, false for messages, "
                          "whose chat template writes its own")
    add_generation_prompt: Flag | None = Field(None, description="messages: end with the assistant's turn "
                                                                 "opened (default true)")
    return_token_strs: Flag | None = Field(None, description="also return each token as text")

    def model_post_init(self, context: Any, /) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise InvalidRequest("Give either `prompt` or `messages`.", param="prompt", code="invalid_value")


class DetokenizeRequest(BaseModel):
    """POST /detokenize (and /v1/detokenize), as vLLM serves it."""

    model_config = ConfigDict(extra="allow")
    model: Annotated[str, Field(min_length=1, max_length=200)]
    tokens: list[Annotated[int, Field(ge=0, le=2**31 - 1, strict=True)]]


def dump(request: BaseModel) -> dict[str, Any]:
    """The request as a JSON-ready dict, with the client's unknown fields and without unset defaults.

    Unknown fields may hold any JSON, also integers no JSON encoder upstream can write: those are a 400
    here, not a 500 when the body is sent on (``input`` is bounded by its type and not walked again).
    """
    body = request.model_dump(exclude_unset=True, exclude_none=False)
    for key, value in body.items():
        where = None if key == "input" else _int_out_of_range(value, (key,))
        if where is not None:
            param = ".".join(map(str, where))
            raise InvalidRequest(
                f"Invalid value for '{param}': integers must fit in 64 bits.", param=param, code="invalid_value"
            )
    return body


# Integers of up to 18 digits always fit in 64 bits; a body without a longer run of digits needs no walk.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def upstream_body(request: BaseModel, raw: bytes | None = None) -> dict[str, Any]:
    """What to send upstream: ``dump(request)``, taken the cheap way where that gives the same.

    ``raw`` is the JSON the request was validated from. Parsed again with orjson it is the client's
    body as sent, unknown fields and all, which is what ``dump`` rebuilds from the model at several
    times the cost. Where it may hold integers past 64 bits (orjson would turn them into floats) or
    is JSON orjson refuses (NaN), ``dump`` decides.
    """
    if raw is not None and _LONG_DIGITS.search(raw) is None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            return body
    return dump(request)


def _int_out_of_range(value: Any, path: tuple) -> tuple | None:
    if type(value) is int:
        return None if INT_MIN <= value <= INT_MAX else path
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        where = _int_out_of_range(item, (*path, key))
        if where is not None:
            return where
    return None


def parse_request(model: type[BaseModel], raw: bytes) -> BaseModel:
    """One pass of pydantic's JSON parser; errors become one clear 400 in the OpenAI shape."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc) from exc
