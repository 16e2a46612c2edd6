"""The gateway service: authorise, budget, route with failover, meter. No HTTP in here.

One call per request: ``handle`` returns a response body, or a ``StreamRelay`` whose ``events``
yields server-sent events. Every path, success, error or a client hanging up, settles the
reservation once and writes exactly one usage record; a request refused after admission is settled
with nothing charged and no record (Meter.finish without an outcome).

A client that hangs up: the caller passes a ``ClientWatch`` (endpoints.py watches the connection),
which the gateway arms around each upstream call; the client leaving then cancels the request's
task, the upstream call is abandoned (its connection closed, so the engine stops generating), and
the request is recorded as ``cancelled`` (``_cancelled``; a stream under way: StreamRelay).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import orjson
from pydantic import BaseModel

from jaif.access.schemas import KeyPrincipal
from jaif.errors import (
    ContextLengthExceeded,
    Forbidden,
    InvalidRequest,
    JaifError,
    Unavailable,
    UpstreamError,
)
from jaif.inference import passthrough
from jaif.inference.backends.base import BackendError, Body, InferenceBackend
from jaif.inference.keys import KeyCache
from jaif.inference.prompt_size import check_limits, embedding_inputs, measure, precheck_items
from jaif.inference.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    RerankRequest,
    TokenizeRequest,
    WithoutOutput,
    dump,
    parse_request,
    upstream_body,
)
from jaif.inference.registry import ModelRegistry, ServedModel
from jaif.inference.routing import ReplicaState
from jaif.inference.streaming import StreamMeter, StreamRelay
from jaif.inference.tokenizers import TokenCounter, output_text
from jaif.metering.meter import Meter, Outcome, Ticket
from jaif.ops.metrics import GatewayMetrics

log = logging.getLogger(__name__)

Request = ChatCompletionRequest | CompletionRequest | EmbeddingRequest | RerankRequest

# Prompts up to this many bytes and messages are counted on the event loop, before admission (well
# under a millisecond); larger ones after admission, in the gateway's counting threads.
COUNT_INLINE_BYTES = 16 * 1024
COUNT_INLINE_ITEMS = 64
COUNTING_THREADS = 2
# Bodies larger than this have their message count checked before pydantic validates them.
PRECHECK_BYTES = 64 * 1024
HOLD_POLL_S = 0.05  # a request held for a deployment's replica looks for one this often
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^[0-9a-f]{1,32}$")


def as_uuid(request_id: str) -> str:
    """A request id in UUID form: hex digits zero-padded (the same digits: the usage record's id shows in
    it), anything else a name-based UUID of it."""
    if _HEX.match(request_id):
        h = request_id.rjust(32, "0")
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "jaif-request:" + request_id))

ENDPOINTS = {
    ChatCompletionRequest: ("chat.completions", "chat"),
    CompletionRequest: ("completions", "chat"),
    EmbeddingRequest: ("embeddings", "embedding"),
    RerankRequest: ("rerank", "rerank"),
}
# The backend's method for a plain (not streamed) request, by endpoint.
_METHODS = {"chat.completions": "chat", "completions": "complete", "embeddings": "embed", "rerank": "rerank"}


class ClientWatch(Protocol):
    """The client's side of a request. While armed, the client leaving cancels the task that armed it
    (asyncio cancellation, delivered at the await under way; endpoints.py's notices within 0.1 s);
    ``arm`` raises CancelledError at once if the client is known to have left. Disarmed, a client
    leaving is only noted."""

    def arm(self) -> None: ...

    def disarm(self) -> None: ...


class _Call:
    """What one request carries through the gateway. What it is made with is set per request; the rest
    starts as the class's defaults (one store fewer per field on every request)."""

    ticket: Ticket | None = None  # the meter's, once admitted
    # The backend to count a large prompt with, off the event loop, once the request is admitted.
    count_later: InferenceBackend | None = None
    replica: ReplicaState | None = None  # the last one called

    def __init__(
        self, request_id: str, principal: KeyPrincipal, model: ServedModel, endpoint: str, body: Body,
        prompt_tokens: int | None, budget: int, started: float, *, upstream_id: str,
        client: ClientWatch | None = None, client_request_id: str | None = None,
    ) -> None:  # fmt: skip
        """``upstream_id``: the x-request-id the upstream gets (Gateway._upstream_id). ``client``: armed around
        each upstream call. ``client_request_id``: the client's own x-request-id, where it sent a sane one."""
        self.request_id = request_id
        self.principal = principal
        self.model = model
        self.endpoint = endpoint
        self.body = body
        self.prompt_tokens = prompt_tokens
        self.budget = budget
        self.started = started
        self.client = client
        self.client_request_id = client_request_id
        self.upstream_id = upstream_id


class Gateway:
    def __init__(
        self,
        *,
        registry: ModelRegistry,
        keys: KeyCache,
        meter: Meter,
        metrics: GatewayMetrics,
        tokens: TokenCounter,
        retries: int,
        max_messages: int = 2048,
        max_prompt_bytes: int = 1024 * 1024,
        hold_s: float = 0.0,
        on_hold: Callable[[], None] | None = None,
    ) -> None:
        """``hold_s``: how long a request for a deployment with no replica to take it waits for one (a
        cold start); ``on_hold`` is called when one starts waiting (the runtime reports it at once)."""
        self.registry = registry
        self.keys = keys
        self.meter = meter
        self.metrics = metrics
        self.tokens = tokens
        self.retries = retries
        self.max_messages = max_messages
        self.max_prompt_bytes = max_prompt_bytes
        self.hold_s = hold_s
        self.on_hold = on_hold
        # Large prompts are counted here: a few threads, so a burst of them cannot take every core.
        self._counting = ThreadPoolExecutor(max_workers=COUNTING_THREADS, thread_name_prefix="jaif-count")
        # Unique across processes without a syscall per request (uuid4 cost ~9% of the hot path).
        self._id_prefix = os.urandom(8).hex()
        self._id_counter = itertools.count()
        # as_uuid of this process's ids (the prefix, then 12 digits of the counter), but for the counter's
        # digits, which as_uuid leaves as they are, last: _upstream_id appends them.
        self._uuid_prefix = as_uuid(self._id_prefix + "0" * 12)[:-12]

    def close(self) -> None:
        self._counting.shutdown(wait=False, cancel_futures=True)

    def new_request_id(self) -> str:
        """A request id (28 hex characters): the usage record's id, and the answer's ``x-request-id``."""
        return f"{self._id_prefix}{next(self._id_counter):012x}"

    def _upstream_id(self, request_id: str, client_request_id: str | None) -> str:
        """The x-request-id the upstream gets, always a UUID: llama-cpp-python's server answers any other with
        a 400 that is not JSON. The client's own where it is one, else the gateway's id (hex digits)
        zero-padded to 32 digits in the 8-4-4-4-12 form (``as_uuid``; any other id: a UUID derived from it).
        An id of this process's (new_request_id) takes the short way to as_uuid's result: a prefix made once."""
        if client_request_id is not None and _UUID.match(client_request_id):
            return client_request_id
        prefix = self._id_prefix
        if len(request_id) == len(prefix) + 12 and request_id.startswith(prefix):
            return self._uuid_prefix + request_id[len(prefix) :]
        return as_uuid(request_id)

    def authenticate(self, authorization: str | None) -> Awaitable[KeyPrincipal]:
        """The key cache's coroutine itself (no coroutine of its own on every request)."""
        return self.keys.authenticate(authorization)

    def list_models(self, principal: KeyPrincipal) -> Body:
        data = []
        for name, model in sorted(self.registry.models.items()):
            if principal.allowed_models is None or name in principal.allowed_models:
                data.append(_model_object(name, model))
        for alias, name in sorted(self.registry.aliases.items()):
            if name in self.registry.models and (principal.allowed_models is None or name in principal.allowed_models):
                data.append(_model_object(alias, self.registry.models[name]))
        return {"object": "list", "data": data}

    def get_model(self, principal: KeyPrincipal, name: str) -> Body:
        return _model_object(name, self._authorised_model(principal, name))

    # -- the request path ------------------------------------------------------------------------
    def parse(self, model: type[BaseModel], raw: bytes) -> Request:
        """The request in ``raw``, validated; a large body past the message limit is refused first."""
        if len(raw) > PRECHECK_BYTES:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = None  # pydantic says what is wrong with it
            precheck_items(model, body, max_messages=self.max_messages)
        return parse_request(model, raw)  # type: ignore[return-value]

    async def handle(
        self,
        principal: KeyPrincipal,
        request: Request,
        raw: bytes | None = None,
        *,
        client: ClientWatch | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> Body | StreamRelay:
        """``raw``: the JSON body ``request`` was parsed from, if at hand (it spares re-serialising it).
        ``client``: armed around each upstream call, so that a client leaving abandons it (CancelledError
        is raised, after the request was recorded as cancelled). ``request_id``: from new_request_id (None:
        one is made). ``client_request_id``: the client's own (sane) id, sent to the upstream as its
        ``x-request-id`` instead of ``request_id``, and stored on the usage record beside it.

        The order bounds the work one request can cause: size limits first (no tokenising), then the
        allowance and rate limit, and only then is a large prompt counted, in a thread of its own
        (``_count_large``). A small prompt is counted on the event loop before admission (microseconds)."""
        call = self._prepare(principal, request, raw, request_id or self.new_request_id(), client, client_request_id)
        call.ticket = await self.meter.admit(principal, tokens=call.budget)
        if call.count_later is not None:
            try:
                await self._count_large(call, request)
            except BaseException:
                await self._release(call)
                raise
        try:
            if call.body.get("stream"):
                return await self._start_stream(call, include_usage=_wants_usage(request))
            return await self._complete(call)
        except BaseException as exc:
            await self._unsettled(call, exc)
            raise

    async def tokenize(self, principal: KeyPrincipal, request: TokenizeRequest | DetokenizeRequest) -> Body:
        """vLLM's /tokenize or /detokenize for a model the key's project may use, by one of its replicas
        (with failover). Neither charged nor recorded: nothing is generated (docs/gateway.md); each call counts
        against the key's requests per minute."""
        model = self._authorised_model(principal, request.model)
        await self.meter.admit_uncharged(principal)
        body = dump(request)
        body["model"] = model.upstream_model or model.name
        request_id = self.new_request_id()
        call = _Call(request_id=request_id, principal=principal, model=model, endpoint="tokenize", body=body,
                     prompt_tokens=None, budget=0, started=time.perf_counter(),
                     upstream_id=self._upstream_id(request_id, None))  # fmt: skip
        method = "tokenize" if isinstance(request, TokenizeRequest) else "detokenize"
        _replica, result = await self._with_failover(call, lambda backend: getattr(backend, method)(body))
        if not isinstance(result, dict):
            raise UpstreamError("The model server's answer is not a JSON object.")
        return result

    def speaks_responses(self, name: object) -> bool:
        """Whether ``name`` is a model (or alias) whose upstream serves /v1/responses itself."""
        if not isinstance(name, str):
            return False
        model = self.registry.models.get(name) or self.registry.models.get(self.registry.aliases.get(name, ""))
        return model is not None and model.responses_api == "native"

    async def responses(
        self, principal: KeyPrincipal, body: Body, raw_size: int, *, client: ClientWatch | None = None,
        request_id: str | None = None, client_request_id: str | None = None,
    ) -> Body | StreamRelay:  # fmt: skip
        """POST /v1/responses passed through (inference/passthrough.py) to a model that speaks it, with the
        same authorisation, allowance, rate limit, failover, hang-up watch and metering as ``handle``."""
        if raw_size > self.max_prompt_bytes:  # inference.max_prompt_bytes bounds the whole request here
            raise InvalidRequest(
                f"Invalid 'input': the request has {raw_size} bytes; this server accepts at most "
                f"{self.max_prompt_bytes} per request.", param="input", code="prompt_too_large",
            )  # fmt: skip
        if body.get("background"):  # the engine would answer at once and generate unmetered: refused, as translated
            raise InvalidRequest("Background responses are not supported: leave 'background' unset or false.",
                                 param="background")
        name = body["model"]
        model = self._authorised_model(principal, name)
        body["model"] = model.upstream_model or model.name
        request_id = request_id or self.new_request_id()
        call = _Call(request_id=request_id, principal=principal, model=model,
                     upstream_id=self._upstream_id(request_id, client_request_id),
                     endpoint="responses", body=body, prompt_tokens=None,
                     budget=passthrough.budget(body, raw_size, model.context_length), started=time.perf_counter(),
                     client=client, client_request_id=client_request_id)  # fmt: skip
        call.ticket = await self.meter.admit(principal, tokens=call.budget)
        try:
            if body.get("stream"):
                return await self._start_responses_stream(call)
            replica, result = await self._with_failover(
                call, lambda b: b.responses(call.body, request_id=call.upstream_id)
            )
            if not isinstance(result, dict):
                raise UpstreamError("The model server's answer is not a JSON object.")
            usage, source = passthrough.chat_usage(result.get("usage")), "upstream"
            if usage is None:
                usage, source = await self._usage(call, passthrough.output_text(result))
            await self._finish(call, replica=replica, usage=usage, usage_source=source, status="ok", status_code=200)
            return result
        except BaseException as exc:
            await self._unsettled(call, exc)
            raise

    async def _start_responses_stream(self, call: _Call) -> StreamRelay:
        replica, (events, first) = await self._with_failover(
            call, lambda backend: _opened(backend, backend.responses_stream(call.body, request_id=call.upstream_id))
        )

        async def finish(status: str, code: int, meter: Any) -> None:
            if status == "error":
                call.model.replicas.failed(replica, "stream broke", answered=False)
                self.metrics.replica_failed(call.model.name, replica.url)
            await self._finish(call, replica=replica, usage=meter.usage, usage_source=meter.usage_source,
                               status=status, status_code=code, ttft_s=meter.ttft_s)  # fmt: skip

        def count(text: str) -> Awaitable[tuple[dict, str]]:
            return self._usage(call, text)

        meter = passthrough.ResponsesMeter(started=call.started)
        return passthrough.ResponsesRelay(replica, events, first, meter, finish, count)  # type: ignore[arg-type]

    def _authorised_model(self, principal: KeyPrincipal, name: str) -> ServedModel:
        model = self.registry.resolve(name)
        allowed = principal.allowed_models
        if allowed is not None and model.name not in allowed and name not in allowed:
            raise Forbidden(
                f"Project {principal.project_name} may not use the model `{name}`.",
                param="model",
                code="model_not_allowed",
            )
        return model

    def _prepare(
        self, principal: KeyPrincipal, request: Request, raw: bytes | None, request_id: str,
        client: ClientWatch | None, client_request_id: str | None,
    ) -> _Call:  # fmt: skip
        endpoint, kind = ENDPOINTS[type(request)]
        size = measure(request)
        check_limits(request, size, max_messages=self.max_messages, max_prompt_bytes=self.max_prompt_bytes)
        model = self._authorised_model(principal, request.model)
        if model.kind != kind:
            raise InvalidRequest(
                f"`{request.model}` is a{'n' if model.kind == 'embedding' else ''} {model.kind} model; "
                f"it cannot serve /v1/{endpoint.replace('.', '/')}.",
                param="model",
                code="wrong_model_kind",
            )
        body = upstream_body(request, raw)
        body["model"] = model.upstream_model or model.name
        replica = model.replicas.replicas[0] if model.replicas.replicas else None
        later = replica is not None and (size.size > COUNT_INLINE_BYTES or size.items > COUNT_INLINE_ITEMS)
        exact = replica.backend.count_prompt_tokens(endpoint, body) if replica and not later else None
        call = _Call(
            request_id, principal, model, endpoint, body, exact,
            _budget(request, model.context_length, size.upper_bound, exact), time.perf_counter(),
            upstream_id=self._upstream_id(request_id, client_request_id), client=client,
            client_request_id=client_request_id,
        )  # fmt: skip
        if later and replica is not None:
            call.count_later = replica.backend
        return call

    async def _count_large(self, call: _Call, request: Request) -> None:
        """Count a large prompt exactly, off the event loop, and check it against the context."""
        assert call.count_later is not None
        loop = asyncio.get_running_loop()
        exact = await loop.run_in_executor(
            self._counting, call.count_later.count_prompt_tokens, call.endpoint, call.body
        )
        if exact is not None:
            _budget(request, call.model.context_length, exact, exact)  # raises past the context
            call.prompt_tokens = exact

    async def _release(self, call: _Call) -> None:
        """A request refused after admission: give back its reservation and its tokens per minute (its
        request per minute stays used: it was counted before its costly part)."""
        if call.ticket is not None and not call.ticket.finished:
            await self.meter.finish(call.ticket)

    async def _usage(self, call: _Call, output: str) -> tuple[dict, str]:
        """Counted usage, for an upstream that reported none; a large prompt is counted off the loop."""
        if call.count_later is None:
            return self.tokens.usage(call.model.tokenizer, call.endpoint, call.body, output)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._counting, self.tokens.usage, call.model.tokenizer, call.endpoint, call.body, output
        )

    async def _cancelled(self, call: _Call) -> None:
        """Record a request cancelled (its client left) before its answer began: the prompt is charged
        (counted as for an upstream without usage) once a model was called, as it may have processed
        it; what it generated before it saw the connection close is not known, and not charged."""
        usage: dict | None = None
        source = "none"
        if call.replica is not None:
            usage, source = await self._usage(call, "")
        _log_cancelled(call, call.replica)
        await self._finish(
            call, replica=call.replica, usage=usage, usage_source=source, status="cancelled", status_code=499
        )

    async def _unsettled(self, call: _Call, exc: BaseException) -> None:
        """Settles a request that ``exc`` ended before its answer was settled: recorded as cancelled (the
        client left, the server stops) or as an error with ``exc``'s status (500 for a bug)."""
        if call.ticket is None or call.ticket.finished:
            return
        if isinstance(exc, asyncio.CancelledError):
            await self._cancelled(call)
        else:
            code = exc.status if isinstance(exc, JaifError) else 500
            await self._finish(call, replica=None, usage=None, status="error", status_code=code)

    async def _with_failover(
        self, call: _Call, attempt: Callable[[InferenceBackend], Awaitable[Any]]
    ) -> tuple[ReplicaState, Any]:
        replicas = call.model.replicas
        client = call.client
        tried: list[ReplicaState] = []
        last: BackendError | None = None
        key = replicas.affinity_key(call.body) if len(replicas.replicas) > 1 else None  # None: no cost
        status = call.model.deployment
        if status is not None:
            # Its idle time (scale to zero) counts from here; a request it cannot serve counts too, so that
            # the controller keeps trying to start a replica rather than scaling an unavailable one to zero.
            replicas.last_used = time.time()
        until: float | None = None  # a deployment's request is held for a replica until then, at most
        for _ in range(self.retries + 1):
            replica = replicas.pick(tried, key)
            if replica is None:
                # Held: a deployment cold or starting (not unavailable: no replica can start, 503), or with
                # no replica left in rotation (a crash: its replacement is coming), within one cold-start
                # limit for the whole request. Not after an error answer, nor while a replica this request
                # tried is still in rotation: that answer is final.
                if (status is not None and status["state"] != "unavailable" and self.hold_s > 0
                        and (last is None or (last.status is None and replicas.pick() is None))):
                    until = until if until is not None else time.monotonic() + self.hold_s
                    replica = await self._hold(call, tried, key, until)
                    if replica is None and last is None:
                        raise self._not_ready(call)
                if replica is None:
                    break
            tried.append(replica)
            if client is not None:
                client.arm()  # raises CancelledError if the client has left already
            call.replica = replica
            replica.outstanding += 1
            try:
                result = await attempt(replica.backend)
            except BackendError as exc:
                if exc.status is not None and exc.status < 500:  # the upstream's own 4xx: the client's mistake
                    replicas.mark_ok(replica)
                    raise _client_error(exc) from exc
                # An error answer (a 5xx) or no answer; the replica leaves rotation only as routing.py says.
                replicas.failed(replica, exc.message, answered=exc.status is not None, unhealthy=exc.unhealthy)
                self.metrics.replica_failed(call.model.name, replica.url)
                last = exc
                if not exc.retryable:
                    raise UpstreamError(f"The model server failed: {exc.message}") from exc
                continue
            finally:
                replica.outstanding -= 1
                if client is not None:
                    client.disarm()
            if replica.errors:
                replica.errors = 0  # error answers are counted in a row
            return replica, result
        if last is not None and last.status is not None:  # the last replica tried answered with an error
            raise _server_error(last) from last
        if last is None:
            why = f" ({status['reason']})" if status and status.get("reason") else ""
            raise Unavailable(
                f"No healthy replica of `{call.model.name}` is available{why}; try again shortly.",
                retry_after=replicas.retry_after(),
            )
        raise Unavailable(
            f"Every replica of `{call.model.name}` failed ({last.message}); try again shortly.",
            retry_after=replicas.retry_after(),
        ) from last

    async def _hold(
        self, call: _Call, tried: list[ReplicaState], key: int | None, until: float
    ) -> ReplicaState | None:
        """Hold the request until a replica of its deployment can take it, until ``until`` at most. It was
        admitted (its quota and rate limit are counted, as for any request) and counts as held in this
        process's load report, which makes the controller start a replica (deployments/controller.py).
        A client that leaves meanwhile cancels it, as anywhere else."""
        replicas = call.model.replicas
        client = call.client
        if time.monotonic() >= until:
            return None
        replicas.held += 1
        try:
            if client is not None:
                client.arm()  # raises CancelledError if the client has left already
            if self.on_hold is not None:
                self.on_hold()
            while time.monotonic() < until:
                await asyncio.sleep(HOLD_POLL_S)
                current = self.registry.models.get(call.model.name)
                if current is None or (current.deployment or {}).get("state") == "unavailable":
                    return None  # deleted, or no replica can start now: no point waiting
                replica = replicas.pick(exclude=tried, key=key if key is not None else replicas.affinity_key(call.body))
                if replica is not None:
                    return replica
            return None
        finally:
            replicas.held -= 1
            if client is not None:
                client.disarm()

    def _not_ready(self, call: _Call) -> Unavailable:
        current = self.registry.models.get(call.model.name)
        status = (current.deployment if current is not None else None) or {}
        if current is None or status.get("state") == "unavailable":
            return Unavailable(
                f"No replica of `{call.model.name}` can be started now ({status.get('reason') or 'it is gone'}); "
                "try again later.",
                retry_after=60.0,
            )
        estimate = status.get("estimated_ready_s") or 1.0
        return Unavailable(
            f"The model `{call.model.name}` is starting (it was scaled to zero, or its replicas are being "
            f"replaced) and no replica was ready within {self.hold_s:g} s; about {estimate:.0f} s to go. "
            "Try again shortly.",
            retry_after=estimate,
            code="model_starting",
        )

    async def _complete(self, call: _Call) -> Body:
        method = _METHODS[call.endpoint]
        replica, result = await self._with_failover(
            call, lambda b: getattr(b, method)(call.body, request_id=call.upstream_id)
        )
        if not isinstance(result, dict):
            raise UpstreamError("The model server's answer is not a JSON object.")
        usage, source = result.get("usage"), "upstream"
        if not isinstance(usage, dict):
            usage, source = await self._usage(call, output_text(result))
            result["usage"] = usage  # the client gets what it is charged
        await self._finish(call, replica=replica, usage=usage, usage_source=source, status="ok", status_code=200)
        return result

    async def _start_stream(self, call: _Call, *, include_usage: bool) -> StreamRelay:
        call.body["stream_options"] = {**(call.body.get("stream_options") or {}), "include_usage": True}
        method = "chat_stream" if call.endpoint == "chat.completions" else "complete_stream"

        replica, (events, first) = await self._with_failover(
            call, lambda backend: _opened(backend, getattr(backend, method)(call.body, request_id=call.upstream_id))
        )

        async def finish(status: str, code: int, meter: StreamMeter) -> None:
            if status == "error":
                call.model.replicas.failed(replica, "stream broke", answered=False)
                self.metrics.replica_failed(call.model.name, replica.url)
            elif status == "cancelled":
                _log_cancelled(call, replica)
            # The upstream's usage, or (an upstream without include_usage, a broken or cancelled stream)
            # what the relay counted from the text streamed until then.
            await self._finish(
                call, replica=replica, usage=meter.usage, usage_source=meter.usage_source, status=status,
                status_code=code, ttft_s=meter.ttft_s,
            )

        def count(text: str) -> Awaitable[tuple[dict, str]]:
            return self._usage(call, text)

        meter = StreamMeter(include_usage=include_usage, started=call.started)
        return StreamRelay(replica, events, first, meter, finish, count)

    def _finish(
        self,
        call: _Call,
        *,
        replica: ReplicaState | None,
        usage: dict | None,
        status: str,
        status_code: int,
        usage_source: str = "upstream",
        ttft_s: float | None = None,
    ) -> Awaitable[None]:
        """Observe the request's metrics and hand back the meter's settlement of it, to be awaited (no
        coroutine of its own: one fewer on every request)."""
        latency_s = time.perf_counter() - call.started
        prompt = int(usage.get("prompt_tokens") or 0) if usage else 0
        completion = int(usage.get("completion_tokens") or 0) if usage else 0
        self.metrics.observe(
            model=call.model.name,
            endpoint=call.endpoint,
            status=status,
            prompt_tokens=prompt,
            completion_tokens=completion,
            latency_s=latency_s,
            ttft_s=ttft_s,
        )
        assert call.ticket is not None
        # Positional, in Outcome's field order: keywords cost a microsecond more on every request.
        outcome = Outcome(
            call.request_id,  # id
            call.endpoint,  # endpoint
            call.model.name,  # model
            replica.url if replica else None,  # replica
            bool(call.body.get("stream")),  # stream
            prompt,  # prompt_tokens
            completion,  # completion_tokens
            usage_source if usage else "none",  # usage_source
            latency_s * 1000,  # latency_ms
            ttft_s * 1000 if ttft_s is not None else None,  # ttft_ms
            status,  # status
            status_code,  # status_code
            call.client_request_id,  # client_request_id
        )
        return self.meter.finish(call.ticket, outcome)


def model_status(model: ServedModel) -> dict:
    """A deployment's status (deployments/service.py), or for another model whether a replica is healthy."""
    if model.deployment is not None:
        return model.deployment
    now = time.monotonic()
    ready = sum(1 for r in model.replicas.replicas if r.healthy(now))
    return {"state": "ready" if ready else "unavailable", "ready_replicas": ready, "estimated_ready_s": None}


def _model_object(name: str, model: ServedModel) -> Body:
    return {"id": name, "object": "model", "created": model.created, "owned_by": model.owned_by,
            "status": model_status(model)}


def _budget(request: Request, ctx: int, upper_bound: int, exact: int | None) -> int:
    """Tokens to reserve: the prompt (exact, else its upper bound) plus what each of the ``n`` choices may
    generate, within the context. Raises ContextLengthExceeded where the prompt or the asked-for completion
    cannot fit."""
    if isinstance(request, WithoutOutput):  # embeddings, rerank
        assert isinstance(request, EmbeddingRequest | RerankRequest)
        return min(exact if exact is not None else upper_bound, ctx * embedding_inputs(request))
    limit = request.output_limit()
    if exact is not None and exact >= ctx:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {ctx} tokens; the prompt has {exact}.",
            param="messages" if isinstance(request, ChatCompletionRequest) else "prompt",
        )
    if limit is not None and limit + (exact or 0) > ctx:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {ctx} tokens; you asked for {limit} "
            f"completion tokens{f' after a prompt of {exact}' if exact is not None else ''}.",
            param=request.output_limit_param(),
        )
    # Each of the n choices may generate up to the limit, within the context left after the prompt.
    prompt = exact if exact is not None else upper_bound
    each = max(0, min(limit if limit is not None else ctx, ctx - prompt))
    return min(prompt, ctx) + (request.n or 1) * each


def _log_cancelled(call: _Call, replica: ReplicaState | None) -> None:
    """A client that leaves is no fault: one line at debug level (the usage record says it too)."""
    log.debug(
        "request %s cancelled: the client left (model %s, replica %s)",
        call.request_id, call.model.name, replica.url if replica else None,
    )  # fmt: skip


def _wants_usage(request: Request) -> bool:
    options = getattr(request, "stream_options", None)
    return bool(options and options.include_usage)


def _client_error(exc: BackendError) -> JaifError:
    error = (exc.body or {}).get("error") if isinstance(exc.body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    err = InvalidRequest(message or f"The model server refused the request ({exc.status}).")
    err.status = exc.status or 400
    if isinstance(error, dict):
        err.param = error.get("param")
        err.code = error.get("code")
    return err


def _server_error(exc: BackendError) -> JaifError:
    """An upstream's own error answer (a 5xx), passed on with its status and message in the OpenAI shape."""
    error = (exc.body or {}).get("error") if isinstance(exc.body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    err = UpstreamError(message if isinstance(message, str) and message else f"The model server answered {exc.status}.")
    err.status = exc.status or 502
    if isinstance(code, str) and code:
        err.code = code
    return err


async def _opened(backend: InferenceBackend, events: AsyncIterator[bytes]) -> tuple[AsyncIterator[bytes], bytes]:
    """A stream and its first event: an engine that ends it at once has failed (retryable: failover)."""
    try:
        return events, await anext(events)
    except StopAsyncIteration as exc:
        raise BackendError(f"{backend.url}: empty stream", retryable=True) from exc
