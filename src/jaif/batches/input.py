"""A batch input file: JSON Lines, one request a line, as OpenAI's Batch API reads them:

    {"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}

``check_input`` reads a whole file once (at upload) and names the first line that is wrong;
``read_lines`` gives the runner the requests of a file already checked. Blank lines are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from pydantic import BaseModel

from jaif.errors import InvalidRequest
from jaif.inference.protocol import ChatCompletionRequest, EmbeddingRequest, parse_request

# The endpoints a batch may run, and the request schema of each.
ENDPOINTS: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/embeddings": EmbeddingRequest,
}
KEYS = {"custom_id", "method", "url", "body"}
MAX_CUSTOM_ID = 512


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # in the file, from 1
    custom_id: str
    url: str
    body: bytes  # the request's JSON body


def _bad(number: int, message: str) -> InvalidRequest:
    return InvalidRequest(f"Line {number} of the batch file: {message}", param="file", code="invalid_batch_line")


def parse_line(number: int, raw: bytes) -> Line:
    """One line, checked: a JSON object with a custom_id, method POST, a batch endpoint and a valid body."""
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _bad(number, "not valid JSON.") from None
    if not isinstance(item, dict):
        raise _bad(number, "each line must be a JSON object.")
    unknown = sorted(set(item) - KEYS)
    if unknown:
        raise _bad(number, f"unknown field '{unknown[0]}' (a line has custom_id, method, url and body).")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        raise _bad(number, f"'custom_id' must be a non-empty string of at most {MAX_CUSTOM_ID} characters.")
    if item.get("method") != "POST":
        raise _bad(number, "'method' must be 'POST'.")
    url = item.get("url")
    if url not in ENDPOINTS:
        raise _bad(number, f"'url' must be one of {', '.join(ENDPOINTS)}; got {url!r}.")
    body = item.get("body")
    if not isinstance(body, dict):
        raise _bad(number, "'body' must be a JSON object: the request's parameters.")
    if body.get("stream"):
        raise _bad(number, "'stream' is not supported in a batch: each answer is written whole to the output file.")
    raw_body = orjson.dumps(body)
    try:
        parse_request(ENDPOINTS[url], raw_body)
    except InvalidRequest as exc:
        raise _bad(number, f"body: {exc.message}") from None
    return Line(number, custom_id, url, raw_body)


def _raw_lines(path: Path, max_line_bytes: int) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        number = 0
        while True:
            raw = f.readline(max_line_bytes + 2)
            if not raw:
                return
            number += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                raise _bad(number, f"longer than the limit of {max_line_bytes} bytes for one request.")
            if raw.strip():
                yield number, raw


def check_input(path: Path, *, max_lines: int, max_line_bytes: int) -> int:
    """Check every line of an uploaded batch file; returns the number of requests. InvalidRequest names
    the first wrong line (custom_ids must be unique)."""
    seen: set[str] = set()
    count = 0
    for number, raw in _raw_lines(path, max_line_bytes):
        line = parse_line(number, raw)
        if line.custom_id in seen:
            raise _bad(number, f"the custom_id {line.custom_id!r} is used by an earlier line; each must be unique.")
        seen.add(line.custom_id)
        count += 1
        if count > max_lines:
            raise _bad(number, f"a batch file holds at most {max_lines} requests.")
    if count == 0:
        raise InvalidRequest("The batch file holds no request.", param="file", code="empty_file")
    return count


def read_lines(path: Path, *, max_line_bytes: int) -> Iterator[Line]:
    """The requests of a checked file, in order."""
    for number, raw in _raw_lines(path, max_line_bytes):
        yield parse_line(number, raw)


def first_other_endpoint(path: Path, endpoint: str, *, max_line_bytes: int) -> Line | None:
    """The first request of the file for another endpoint than ``endpoint``, if any."""
    return next((line for line in read_lines(path, max_line_bytes=max_line_bytes) if line.url != endpoint), None)
