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


class EmbeddingRequest(_Request):
    input: (
        str
        | Annotated[list[str], Field(min_length=1)]
        | Annotated[list[Int64], Field(min_length=1)]
        | Annotated[list[Annotated[list[Int64], Field(min_length=1)]], Field(min_length=1)]
    )
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: Annotated[int, Field(ge=1, le=2**31)] | None = None


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
