"""The contract every inference backend keeps, and the one error it raises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

Body = dict[str, Any]


class BackendError(Exception):
    """A backend failed. ``retryable`` is True when nothing was received, so another replica may try.

    ``status`` and ``body`` carry an upstream's own error answer, which the gateway passes to the client:
    a 4xx at once, a 5xx (``retryable``) when no other replica answered. ``unhealthy``: a health check of
    the replica failed too (it is down or hung, not just this request).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        body: Body | None = None,
        unhealthy: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.body = body
        self.unhealthy = unhealthy


class InferenceBackend(Protocol):
    """One replica of one model. Streams yield the JSON payload of each server-sent event, as bytes,
    without the ``data: `` framing and without the final ``[DONE]``. ``request_id``: the request's id,
    which an HTTP upstream gets as its ``x-request-id`` header."""

    url: str

    async def chat(self, body: Body, *, request_id: str | None = None) -> Body: ...

    def chat_stream(self, body: Body, *, request_id: str | None = None) -> AsyncIterator[bytes]: ...

    async def complete(self, body: Body, *, request_id: str | None = None) -> Body: ...

    def complete_stream(self, body: Body, *, request_id: str | None = None) -> AsyncIterator[bytes]: ...

    async def embed(self, body: Body, *, request_id: str | None = None) -> Body: ...

    async def rerank(self, body: Body, *, request_id: str | None = None) -> Body: ...

    async def responses(self, body: Body, *, request_id: str | None = None) -> Body:
        """The Responses API, passed through to an upstream that speaks it (inference/passthrough.py)."""
        ...

    def responses_stream(self, body: Body, *, request_id: str | None = None) -> AsyncIterator[bytes]: ...

    async def tokenize(self, body: Body) -> Body:
        """vLLM's /tokenize: ``{"tokens", "count", "max_model_len"}`` (and ``token_strs`` when asked)."""
        ...

    async def detokenize(self, body: Body) -> Body:
        """vLLM's /detokenize: ``{"prompt"}``."""
        ...

    async def health(self) -> bool: ...

    def count_prompt_tokens(self, endpoint: str, body: Body) -> int | None:
        """Exact prompt tokens when the backend can count them cheaply, else None."""
        ...

    async def aclose(self) -> None: ...
