"""The Responses API in jaif's OpenAPI document: the objects it answers (describe only; the code builds
plain dicts) and POST /v1/responses, a hot operation (inference/openapi.py's add_hot_operations)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from jaif.inference.openapi import HotOp
from jaif.responses.schemas import ResponseCreate


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ResponseUsage(_Open):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens_details: dict[str, int]


class OutputItem(_Open):
    """A `message` (role assistant, `content`: output_text parts) or a `function_call` (`call_id`, `name`,
    `arguments` as a JSON string)."""

    id: str
    type: Literal["message", "function_call"]
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"] | None = None
    content: list[dict[str, Any]] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


class Response(_Open):
    """A response of /v1/responses (created, or retrieved while stored)."""

    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "failed", "in_progress"]
    model: str
    output: list[OutputItem]
    usage: ResponseUsage | None = None
    previous_response_id: str | None = None
    instructions: str | None = None
    incomplete_details: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    store: bool


class ResponseStreamEvent(_Open):
    """One event of a /v1/responses stream: its SSE `event:` is its `type` (response.created,
    response.output_text.delta, ..., response.completed with the response and its usage)."""

    type: str
    sequence_number: int


class ResponseDeleted(_Open):
    """A stored response deleted."""

    id: str
    object: Literal["response"]
    deleted: bool


class InputItemList(_Open):
    """A page of a stored response's input items (newest first unless order=asc)."""

    object: Literal["list"]
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool


CREATE: HotOp = ("/v1/responses", "responses", "Create a model response", ResponseCreate, Response,
                 ResponseStreamEvent)  # fmt: skip
# For add_hot_operations: a stream of typed events, without `data: [DONE]`.
OPERATIONS: tuple[tuple[HotOp, bool], ...] = ((CREATE, False),)
