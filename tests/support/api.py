"""Helpers for end-to-end checks of the OpenAI-compatible API: error bodies, SSE, the usage ledger."""

from __future__ import annotations

import json

import httpx

from tests.support.openai_schema import assert_valid
from tests.support.procs import jaif, last_line, wait_for


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def openai_error(
    response: httpx.Response, status: int, *, code: str | None = None, param: str | None = None
) -> dict:
    """Assert ``response`` is the error ``status`` in the OpenAI shape; returns its ``error`` object.

    With ``code``/``param`` given, those must match too. The message must say something.
    """
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert_valid(body, "ErrorResponse")
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert len(error["message"]) >= 10, error
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def sse_payloads(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of a server-sent-event response, in order, [DONE] included."""
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    payloads = []
    for event in response.text.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in event.split("\n") if line]
        if not lines:
            continue
        assert all(line.startswith("data: ") for line in lines), event
        payloads.append("".join(line[len("data: ") :] for line in lines))
    return payloads


def usage_of(env: dict[str, str], project: str) -> dict:
    """`jaif usage --project P --json`: requests, tokens, errors and the quota books."""
    return json.loads(last_line(jaif(env, "usage", "--project", project, "--json")))


def usage_after(env: dict[str, str], project: str, *, requests: int, timeout: float = 15.0) -> dict:
    """The project's usage once the ledger holds ``requests`` records (the server flushes in batches)."""
    usage = wait_for(lambda: usage_of(env, project), lambda u: u["requests"] >= requests, timeout=timeout, every=0.3)
    assert usage["requests"] == requests, usage
    return usage
