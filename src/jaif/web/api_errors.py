"""OpenAPI documentation of the /api/v1 error answers: the OpenAI error shape that web/errors.py renders."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ApiErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ApiError(BaseModel):
    """Every /api/v1 error: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ApiErrorDetail


_WHAT = {
    400: "Invalid input; `param` names the field.",
    401: "Not signed in, or a bad personal access token.",
    403: "Signed in, but not allowed to do this.",
    404: "Not found, or not visible to you.",
    409: "Conflicts with the current state (e.g. an illegal state transition).",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the error answers it may give."""
    return {status: {"model": ApiError, "description": _WHAT[status]} for status in statuses}
