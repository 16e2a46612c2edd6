"""One error handler for the whole app; it renders by path (HOUSE_STYLE: Errors).

/v1/*  the OpenAI shape {"error": {"message", "type", "param", "code"}}
/api/* the same JSON shape
pages  an HTML error page
"""

from __future__ import annotations

import logging
import math
import uuid
from http import HTTPStatus

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, Response

from jaif.errors import JaifError
from jaif.inference.protocol import validation_error

log = logging.getLogger("jaif.errors")

_HTTP_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
}


def render(request: Request, error: JaifError) -> Response:
    headers = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    path = request.url.path
    if path.startswith("/v1") or path.startswith("/api") or path in ("/healthz", "/metrics"):
        return Response(
            orjson.dumps(error.to_openai()), status_code=error.status, headers=headers, media_type="application/json"
        )
    title = f"Error {error.status}"
    body = f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{_escape(error.message)}</p>"
    return HTMLResponse(body, status_code=error.status, headers=headers)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _http_message(request: Request, exc: StarletteHTTPException) -> str:
    """Starlette's bare reasons ("Not Found") say little; name the method and URL as OpenAI does."""
    if exc.status_code == 404 and exc.detail == HTTPStatus.NOT_FOUND.phrase:
        return f"Invalid URL ({request.method} {request.url.path})"
    if exc.status_code == 405:
        return f"Method {request.method} is not allowed for {request.url.path}"
    return str(exc.detail)


def install(app: FastAPI) -> None:
    @app.exception_handler(JaifError)
    async def _jaif(request: Request, exc: JaifError) -> Response:
        return render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return render(request, validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        error = JaifError(_http_message(request, exc))
        error.status = exc.status_code
        error.type = _HTTP_TYPES.get(exc.status_code, "invalid_request_error")
        error.code = None
        response = render(request, error)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        request_id = uuid.uuid4().hex[:12]
        log.exception("unhandled error, request %s %s %s", request_id, request.method, request.url.path)
        return render(request, JaifError(f"The server had an error processing your request (request {request_id})."))
