"""One error handler for the whole app; it renders by path (HOUSE_STYLE: Errors).

/v1/*  the OpenAI shape {"error": {"message", "type", "param", "code"}}
/api/* the same JSON shape
pages  an HTML error page

``error_response`` is the one renderer: the exception handlers installed here use it, and so do the
ASGI middlewares that refuse a request before it reaches a route (web/csrf.py; web/limits.py answers
every refusal as JSON, ``json_error``, whatever the path). A
JaifError's ``retry_after`` becomes a Retry-After header. The hot /v1 endpoints
(inference/endpoints.py) answer their JaifErrors with ``error_response`` from here.

An unreachable database or Redis met by a route (jaif/dependencies.py's ``outage_of``) is a 503 with
Retry-After, told to the app's DependencyHealth (``app.state.dependencies``) instead of a traceback
per request; any other database error stays a 500, logged with its traceback.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import uuid
from collections.abc import Iterable
from http import HTTPStatus

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, Response
from starlette.types import Scope

from jaif.dependencies import outage_of, unavailable
from jaif.errors import JaifError, validation_error
from jaif.web.headers import API_PREFIXES
from jaif.web.request_ids import SCOPE_KEY as REQUEST_ID_KEY
from jaif.web.request_ids import header_of

log = logging.getLogger("jaif.errors")

_HTTP_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
}


def json_error(error: JaifError) -> Response:
    """``error`` in the OpenAI shape, with Retry-After where it says when to try again."""
    headers = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    return Response(
        orjson.dumps(error.to_openai()), status_code=error.status, headers=headers, media_type="application/json"
    )


# Outside /v1 and /api: the operational endpoints, and vLLM's tokenizer paths (inference/token_endpoints.py).
_JSON_PATHS = frozenset({"/healthz", "/metrics", "/tokenize", "/detokenize"})


def error_response(path: str, error: JaifError) -> Response:
    """The answer for ``error`` on a request for ``path``: JSON in the OpenAI shape for /v1, /api and the
    operational endpoints (and vLLM's /tokenize and /detokenize), else an HTML page."""
    if path.startswith("/v1") or path.startswith("/api") or path in _JSON_PATHS:
        return json_error(error)
    headers = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    title = f"Error {error.status}"
    body = f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{_escape(error.message)}</p>"
    return HTMLResponse(body, status_code=error.status, headers=headers)


def render(request: Request, error: JaifError) -> Response:
    return error_response(request.url.path, error)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def http_error(method: str, path: str, status: int, detail: str) -> JaifError:
    """An HTTP-level refusal (Starlette's HTTPException, a route's wrong method) as a JaifError. Starlette's
    bare reasons ("Not Found") say little: 404 and 405 name the method and URL, as OpenAI does."""
    if status == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        message = f"Invalid URL ({method} {path})"
    elif status == 405:
        message = f"Method {method} is not allowed for {path}"
    else:
        message = detail
    error = JaifError(message)
    error.status = status
    error.type = _HTTP_TYPES.get(status, "invalid_request_error")
    error.code = None
    return error


def method_not_allowed(scope: Scope, allowed: Iterable[str]) -> Response:
    """The 405 for a request whose path a route has but not its method (inference/endpoints.py)."""
    response = error_response(scope["path"], http_error(scope["method"], scope["path"], 405, ""))
    response.headers["allow"] = ", ".join(allowed)
    return response


def install(app: FastAPI) -> None:
    @app.exception_handler(JaifError)
    async def _jaif(request: Request, exc: JaifError) -> Response:
        return render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return render(request, validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        error = http_error(request.method, request.url.path, exc.status_code, str(exc.detail))
        response = render(request, error)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def _outage(request: Request, exc: Exception) -> Response:
        dependency = outage_of(exc)
        if dependency is None:
            raise exc  # a bug, not an outage: the last-resort handler below logs it
        health = getattr(request.app.state, "dependencies", None)
        if health is not None:
            health.failed(dependency, exc)
            health.affected(dependency, refused=True)
        else:
            log.warning("%s unavailable: %s %s answered 503", dependency, request.method, request.url.path)
        return render(request, unavailable(dependency))

    # Every error these libraries raise comes here first; _outage passes on what is not an outage.
    outages = (sa.DBAPIError, sa.TimeoutError, sa.DisconnectionError, sqlite3.Error, psycopg.Error, RedisError)
    for kind in outages:
        app.add_exception_handler(kind, _outage)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_response(request.scope, exc)


def unexpected_response(scope: Scope, exc: Exception) -> Response:
    """The last resort: a bug's 500, logged once with its traceback and the request's id, which the answer
    names. The app's handler for Exception (above), and the hot /v1 endpoints (inference/endpoints.py),
    which answer outside FastAPI's error middleware (web/edge.py), use it."""
    # A hot /v1 endpoint's request id (the one its usage record has), else the client's, else a new one.
    given = scope.get(REQUEST_ID_KEY) or header_of(scope["headers"])
    request_id = given.decode("latin-1") if given else uuid.uuid4().hex[:12]
    log.error("unhandled error, request %s %s %s", request_id, scope["method"], scope["path"], exc_info=exc)
    error = JaifError(f"The server had an error processing your request (request {request_id}).")
    response = error_response(scope["path"], error)
    if scope["path"].startswith(API_PREFIXES):  # the id the answer names, not another one (web/headers.py)
        response.headers["x-request-id"] = request_id
    return response
