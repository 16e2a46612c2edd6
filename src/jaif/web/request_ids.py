"""Request ids on the OpenAI-compatible API: an ``x-request-id`` header on every answer of its paths
(web/headers.py ``API_PREFIXES``: /v1, /tokenize, /detokenize).

A client may send its own ``x-request-id``; a sane one (1 to 128 characters of letters, digits and
``-_.:``) is kept: echoed back, passed to the upstream and stored on the usage record
(inference/endpoints.py). Anything else is ignored and the request gets an id of jaif's own. The hot
/v1 endpoints set theirs (the gateway's request id, the usage record's id); SecurityHeaders
(web/headers.py) gives every other /v1 answer one (the model list, a 404, a refused body).
"""

from __future__ import annotations

import os
import re

HEADER = b"x-request-id"
# Where a hot /v1 endpoint leaves the id it answers with, for the last-resort error handler (web/errors.py).
SCOPE_KEY = "jaif.request_id"
MAX_LENGTH = 128
_SANE = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def client_request_id(value: bytes | None) -> bytes | None:
    """The client's ``x-request-id`` where it is sane, else None."""
    if value is None or _SANE.fullmatch(value) is None:
        return None
    return value


def new_request_id() -> bytes:
    """An id for a /v1 answer that carries none of the gateway's (28 hex characters, as the gateway's)."""
    return os.urandom(14).hex().encode()


def header_of(headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> bytes | None:
    """The request's sane ``x-request-id`` from ASGI ``headers``, else None."""
    for name, value in headers:
        if name == HEADER:
            return client_request_id(value)
    return None
