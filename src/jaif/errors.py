"""The error tree. Every error a user can cause is a JaifError; one handler renders it (see web/errors.py).

    JaifError (500 internal_error)
    ├── InvalidRequest      400 invalid_request_error
    │   └── ContextLengthExceeded 400 (code context_length_exceeded)
    ├── Unauthorized        401 authentication_error
    ├── Forbidden           403 permission_error
    ├── NotFound            404 not_found_error
    ├── Conflict            409 conflict_error
    ├── PayloadTooLarge     413 invalid_request_error
    ├── QuotaExceeded       429 insufficient_quota
    ├── RateLimited         429 rate_limit_error
    ├── UpstreamError       502 upstream_error
    └── Unavailable         503 service_unavailable
        └── DependencyUnavailable 503 (code dependency_unavailable): the database or Redis is down

``validation_error`` turns pydantic's validation errors into one InvalidRequest.
"""

from __future__ import annotations

from typing import Any


class JaifError(Exception):
    status: int = 500
    type: str = "internal_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after

    def to_openai(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(JaifError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class Unauthorized(JaifError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(JaifError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(JaifError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class Conflict(JaifError):
    status = 409
    type = "conflict_error"
    code = "conflict"


class PayloadTooLarge(JaifError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class QuotaExceeded(JaifError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class RateLimited(JaifError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(JaifError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class Unavailable(JaifError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"


class DependencyUnavailable(Unavailable):
    """A request that cannot be served while the database or Redis is unreachable (jaif/dependencies.py)."""

    code = "dependency_unavailable"


def validation_error(exc: Any) -> InvalidRequest:
    """A pydantic ValidationError or FastAPI RequestValidationError (anything with ``errors()``) as one 400
    naming the first bad field: translated here, at the edge, for every route."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return InvalidRequest("The request body is not valid.")
    # In a union pydantic reports every member. The member the client meant is the one whose type
    # matched and whose constraint failed (too short, too large), else the one it got deepest into.
    first = max(errors, key=lambda e: (not _is_type_mismatch(e), len(e.get("loc", ()))))
    if first.get("type") == "json_invalid":
        return InvalidRequest(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.",
            code="invalid_json",
        )
    # FastAPI puts "body" first; a field that is itself called "body" keeps its name.
    loc = [str(p) for i, p in enumerate(first.get("loc", ())) if not (i == 0 and p == "body") and not _is_union_tag(p)]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid value")
    if param is None:
        return InvalidRequest(f"The request body must be a JSON object of parameters: {message}.", code="invalid_value")
    if first.get("type") == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    return InvalidRequest(f"Invalid value for '{param}': {message}.", param=param, code="invalid_value")


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "list", "dict", "none"})


def _is_type_mismatch(error: dict) -> bool:
    kind = error.get("type", "")
    return kind.endswith("_type") or kind.endswith("_parsing")


def _is_union_tag(part: Any) -> bool:
    """pydantic puts the member of a union into ``loc`` ("stop", "list[str]"); fields are snake_case."""
    return isinstance(part, str) and (part in _TYPE_TAGS or not part.isidentifier() or part != part.lower())
