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
"""

from __future__ import annotations


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
