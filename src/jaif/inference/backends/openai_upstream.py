"""Any OpenAI-compatible server (vLLM, llama.cpp server, TGI, Ollama, another jaif) as a backend.

HTTP goes through an UpstreamTransport (transport.py; http11 by default, aiohttp as an option), made on first use inside
the running event loop. Transport failures become BackendError here, with the gateway's failover
rules: nothing usable came back (refused, timed out, cut off, a 5xx, not JSON) -> ``retryable``, so
another replica may try; the upstream's own 4xx -> passed on to the client; a 5xx in JSON (the engine's
error answer) carries its status and body, passed on to the client when no other replica answers.
Streams are passed on event by event, never buffered; once an event was passed on, a failure is no
longer retryable.

Each exchange runs under the model's time limits (deadline.py: first byte, idle, total). The health
check exercises the serving path: a one-token completion (an embedding of one word for embedding
models) within ``inference.probe_timeout_s``, not ``GET /models``, which a hung engine still answers.
A replica that delivered an answer or an event since its last check is serving and is not probed:
the check costs nothing on a busy replica, and does not queue behind its generations.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from jaif.config import InferenceSettings
from jaif.inference.backends.base import BackendError, Body
from jaif.inference.backends.deadline import Timeouts, Watch
from jaif.inference.backends.transport import TransportError, TransportOptions, UpstreamTransport
from jaif.inference.service import display_url

PROBE_TEXT = "ping"


def transport_factory(kind: str) -> Callable[[str, TransportOptions], UpstreamTransport]:
    """The UpstreamTransport implementation named by ``inference.upstream_transport``."""
    if kind == "aiohttp":
        from jaif.inference.backends.aiohttp_transport import AiohttpTransport

        return AiohttpTransport
    if kind == "http11":
        from jaif.inference.backends.http11_transport import Http11Transport

        return Http11Transport
    raise ValueError(f"unknown upstream transport {kind!r}")


class OpenAIUpstream:
    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        settings: InferenceSettings | None = None,
        model: str = "",
        kind: str = "chat",
        timeouts: Timeouts | None = None,
    ) -> None:
        """``model``: the id the upstream knows (what the health check asks for); ``kind``: chat or
        embedding; ``timeouts``: the model's time limits (default: the ``inference.*`` settings)."""
        # ``url`` is what metrics, logs, usage records and error messages show: without credentials.
        self._target = url.rstrip("/")
        self.url = display_url(self._target)
        settings = settings or InferenceSettings()
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self.timeouts = timeouts or timeouts_from(settings)
        self._options = TransportOptions.from_settings(settings, headers=headers, timeouts=self.timeouts)
        self._make = transport_factory(settings.upstream_transport)
        self._transport: UpstreamTransport | None = None
        self._root_transport: UpstreamTransport | None = None  # the server's root: /tokenize, /detokenize
        self._watch: Watch | None = None
        probe: Body
        if kind == "embedding":
            self._probe_path, probe = "/embeddings", {"model": model, "input": PROBE_TEXT}
        elif kind == "rerank":
            self._probe_path, probe = "/rerank", {"model": model, "query": PROBE_TEXT, "documents": [PROBE_TEXT]}
        else:
            self._probe_path = "/chat/completions"
            probe = {"model": model, "messages": [{"role": "user", "content": PROBE_TEXT}], "max_tokens": 1}
        self._probe_body = orjson.dumps(probe)
        self._probe_timeout_s = settings.probe_timeout_s
        self._delivered = 0  # answers and stream events received
        self._delivered_at_check = 0  # as the last health check saw it
        self._check: asyncio.Task[bool] | None = None  # the health check under way, shared

    @property
    def transport(self) -> UpstreamTransport:
        # Made on first use, inside the running event loop (its connections belong to that loop).
        if self._transport is None:
            self._transport = self._make(self._target, self._options)
        return self._transport

    @property
    def root_transport(self) -> UpstreamTransport:
        """To the server's root (the replica's URL without its /v1), where vLLM serves /tokenize."""
        if self._root_transport is None:
            self._root_transport = self._make(server_root(self._target), self._options)
        return self._root_transport

    @property
    def watch(self) -> Watch:
        # One timer for the time limits of every exchange with this replica (deadline.py).
        if self._watch is None:
            self._watch = Watch(self.timeouts, self.check)
        return self._watch

    def chat(self, body: Body, *, request_id: str | None = None) -> Coroutine[Any, Any, Body]:
        return self._post("/chat/completions", body, request_id)

    def chat_stream(self, body: Body, *, request_id: str | None = None) -> AsyncIterator[bytes]:
        return self._stream("/chat/completions", body, request_id)

    def complete(self, body: Body, *, request_id: str | None = None) -> Coroutine[Any, Any, Body]:
        return self._post("/completions", body, request_id)

    def complete_stream(self, body: Body, *, request_id: str | None = None) -> AsyncIterator[bytes]:
        return self._stream("/completions", body, request_id)

    def embed(self, body: Body, *, request_id: str | None = None) -> Coroutine[Any, Any, Body]:
        return self._post("/embeddings", body, request_id)

    async def rerank(self, body: Body, *, request_id: str | None = None) -> Body:
        """vLLM's rerank (Cohere's and Jina's shape); its ``usage`` (``total_tokens`` only) is completed as
        the gateway meters it: prompt tokens, none generated."""
        result = await self._served("/rerank", body, request_id)
        usage = result.get("usage") if isinstance(result, dict) else None
        if isinstance(usage, dict) and "prompt_tokens" not in usage and isinstance(usage.get("total_tokens"), int):
            usage["prompt_tokens"], usage["completion_tokens"] = usage["total_tokens"], 0
        return result

    async def responses(self, body: Body, *, request_id: str | None = None) -> Body:
        return await self._served("/responses", body, request_id)

    def responses_stream(self, body: Body, *, request_id: str | None = None) -> AsyncIterator[bytes]:
        """The Responses API's typed events (their JSON; each names its type), without [DONE] at the end."""
        return self._stream("/responses", body, request_id, done=False)

    async def tokenize(self, body: Body) -> Body:
        return await self._served("/tokenize", body, None, root=True)

    async def detokenize(self, body: Body) -> Body:
        return await self._served("/detokenize", body, None, root=True)

    async def _served(self, path: str, body: Body, request_id: str | None, *, root: bool = False) -> Body:
        """A POST to an endpoint not every OpenAI-compatible server has: a 404 (or 405) of the path, not an
        OpenAI-shaped error of the engine's own (an unknown model), is a clear 400."""
        try:
            return await self._post(path, body, request_id, root=root)
        except BackendError as exc:
            if exc.status not in (404, 405) or (isinstance(exc.body, dict) and "error" in exc.body):
                raise
            message = f"The server of `{body.get('model')}` does not serve {path}."
            error = {"message": message, "type": "invalid_request_error", "param": None, "code": "unsupported_endpoint"}
            raise BackendError(message, retryable=False, status=400, body={"error": error}) from exc

    def count_prompt_tokens(self, endpoint: str, body: Body) -> int | None:
        return None

    async def health(self) -> bool:
        """True when the replica serves: it answered or streamed since the last check, or
        it answers a one-token completion (below 500) within ``inference.probe_timeout_s``. Concurrent
        callers (the health loop, requests whose first byte is late) share one check."""
        if self._delivered != self._delivered_at_check:  # something came since the last check: serving
            self._delivered_at_check = self._delivered
            return True
        return await self.check()

    async def check(self) -> bool:
        """The one-token completion itself, never skipped (a request whose first byte is late asks it:
        whatever the replica delivered before, it may have hung since)."""
        if self._check is None or self._check.done():
            self._check = asyncio.get_running_loop().create_task(self._probe())
        return await asyncio.shield(self._check)

    async def _probe(self) -> bool:
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                status, _ = await self.transport.post(self._probe_path, self._probe_body)
        except (TransportError, TimeoutError):
            return False
        return status < 500

    async def aclose(self) -> None:
        if self._check is not None and not self._check.done():
            self._check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._check
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None
        if self._root_transport is not None:
            await self._root_transport.aclose()
            self._root_transport = None

    async def _post(self, path: str, body: Body, request_id: str | None = None, *, root: bool = False) -> Body:
        deadline = (self._watch or self.watch).start()
        transport = self.root_transport if root else (self._transport or self.transport)
        try:
            try:
                status, content = await transport.post(path, orjson.dumps(body), request_id=request_id)
            except asyncio.CancelledError as exc:
                raise deadline.expired(exc) from None
        except TransportError as exc:
            # Nothing usable came back: another replica may try (as the client would have), unless this
            # one had the whole request limit (a working replica that never finished: no second wait).
            raise BackendError(
                f"{self.url}: {exc.message}", retryable=not deadline.spent, unhealthy=deadline.unhealthy
            ) from exc
        finally:
            deadline.close()
        if status < 500:  # an answer, not a server error: the replica serves
            self._delivered += 1
        return self._decode(status, content)

    def _decode(self, status: int, content: bytes) -> Body:
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            # Not the engine's answer (a proxy's error page when the engine is gone): as if none came.
            what = status if status >= 500 else "something that is not JSON"
            raise BackendError(f"{self.url} answered {what}", retryable=True) from exc
        if status >= 500:  # the engine's error answer: another replica may try; else the client gets it
            body = data if isinstance(data, dict) else None
            raise BackendError(f"{self.url} answered {status}", retryable=True, status=status, body=body)
        if status >= 400:
            raise BackendError(
                f"{self.url} answered {status}",
                retryable=False,
                status=status,
                body=data if isinstance(data, dict) else None,
            )
        return data

    async def _stream(
        self, path: str, body: Body, request_id: str | None = None, *, done: bool = True
    ) -> AsyncIterator[bytes]:
        """``done``: the stream ends with ``data: [DONE]`` (chat and completions; not the Responses API's,
        which ends when the server ends its answer)."""
        sent = False
        limit = self._options.max_body_bytes
        deadline = self.watch.start()
        try:
            try:
                async with self.transport.stream(path, orjson.dumps(body), request_id=request_id) as answer:
                    if answer.status >= 400:
                        self._decode(answer.status, await answer.read())
                    buffer = b""
                    async for piece in answer.chunks():
                        buffer = buffer + piece if buffer else piece
                        if b"\r" in buffer:
                            buffer = buffer.replace(b"\r\n", b"\n")
                        while (end := buffer.find(b"\n\n")) >= 0:
                            event, buffer = buffer[:end], buffer[end + 2 :]
                            for line in event.split(b"\n"):
                                if not line.startswith(b"data:"):
                                    continue
                                payload = line[5:].strip()
                                if payload == b"[DONE]":
                                    return
                                if not sent:
                                    sent = True
                                    deadline.first_event()
                                deadline.events += 1
                                self._delivered += 1
                                deadline.waiting = False  # with the client until it asks for the next
                                yield payload
                                if deadline.reason is not None:  # a limit passed meanwhile
                                    raise TransportError(deadline.reason, timeout=True, answered=True)
                                if deadline.events == 1:
                                    deadline.resume()  # the relay's task may take over from the gateway's
                                else:
                                    deadline.waiting = True
                        if len(buffer) > limit:
                            raise TransportError(f"an event larger than {limit} bytes", answered=True)
            except asyncio.CancelledError as exc:
                raise deadline.expired(exc) from None
        except TransportError as exc:
            # Once an event was passed on, the client has bytes: only a silent failure may be retried.
            what = f"stream broke ({exc.message})" if exc.answered else exc.message
            raise BackendError(f"{self.url}: {what}", retryable=not sent, unhealthy=deadline.unhealthy) from exc
        finally:
            deadline.close()
        if done:
            raise BackendError(f"{self.url}: stream ended without [DONE]", retryable=not sent)


def server_root(url: str) -> str:
    """A replica URL (``http://host:8000/v1``, perhaps with a query) without its trailing /v1."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return urlunsplit(parts._replace(path=path.removesuffix("/v1")))


def timeouts_from(settings: InferenceSettings) -> Timeouts:
    """The ``inference.*`` time limits, for a model that sets none of its own."""
    return Timeouts(
        ttfb_s=settings.ttfb_timeout_s, idle_s=settings.idle_timeout_s, total_s=settings.request_timeout_s
    )
