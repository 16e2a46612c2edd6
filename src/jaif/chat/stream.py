"""A chat turn sent through the gateway, in process, and its answer streamed to the page.

``answer`` hands the turn's request to ``Gateway.handle``, the very pipeline POST /v1/chat/completions
runs (inference/gateway.py): the model's authorisation for the project, the prompt's size limits, the
project's token allowance (a reservation), the key's rate limit, routing with failover and the hold for a
model that is starting, and, however the answer ends, exactly one usage record charged to the project. The
principal is the member's chat key of the project (access/service.py ``chat_principal``), so the record
is the one an API call with a key writes; nothing here meters anything itself, and the /v1 hot path is
not touched.

It yields events for the page, as dicts: ``notice`` (the model is starting), ``delta`` (text as it
comes), then ``done`` (the answer rendered as HTML, its use, how it ended) or ``error`` (a refusal with
the gateway's message: quota used up, rate limited, the model starting or unavailable...). The answer,
complete or cut off, is stored with its use and the usage record's id.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import orjson
from sqlalchemy.orm import Session, sessionmaker

from jaif.chat import service
from jaif.chat.render import markdown
from jaif.chat.service import Turn
from jaif.db.engine import transaction
from jaif.errors import JaifError
from jaif.inference.gateway import ClientWatch, Gateway, model_status
from jaif.inference.protocol import ChatCompletionRequest
from jaif.inference.streaming import StreamRelay

HEADLINES = {
    "insufficient_quota": "Not sent: the project's token allowance is used up.",
    "rate_limit_exceeded": "Not sent: too many requests in the last minute.",
    "model_starting": "Not answered yet: the model is still starting.",
}


def refusal(exc: JaifError) -> dict:
    """A refusal as the page shows it: a headline by its code, the gateway's own message, when to retry."""
    headline = HEADLINES.get(exc.code or "") or ("Not answered: the model is unavailable." if exc.status == 503
                                                  else "Not answered.")
    event: dict = {"type": "error", "code": exc.code, "status": exc.status, "headline": headline, "text": exc.message}
    if exc.retry_after is not None:
        event["retry_after_s"] = round(exc.retry_after, 1)
    return event


def request_of(turn: Turn) -> ChatCompletionRequest:
    body: dict = {"model": turn.model, "messages": turn.messages, "stream": True,
                  "stream_options": {"include_usage": True}}
    if turn.temperature is not None:
        body["temperature"] = turn.temperature
    if turn.max_tokens is not None:
        body["max_tokens"] = turn.max_tokens
    return ChatCompletionRequest.model_validate(body)


def _notice(gateway: Gateway, name: str) -> dict | None:
    model = gateway.registry.models.get(name)
    status = model_status(model) if model is not None else {}
    state = status.get("state")
    if state not in ("cold", "starting"):
        return None
    wait = status.get("estimated_ready_s")
    about = f" (about {wait:.0f} s)" if wait else ""
    return {"type": "notice", "state": state,
            "text": f"The model {name} is {state}: your message waits until it has started{about}."}


async def answer(
    *, gateway: Gateway, sessions: sessionmaker[Session], turn: Turn, client: ClientWatch | None = None
) -> AsyncGenerator[dict, None]:
    """The turn's events. ``client``: the page's side of the request, as on /v1 (inference/endpoints.py's
    Hangup): armed around the gateway's upstream calls and while the answer streams, so that the page
    going away abandons the request, which the gateway then settles as cancelled."""
    notice = _notice(gateway, turn.model)
    if notice is not None:
        yield notice
    request_id = gateway.new_request_id()
    try:
        relay = await gateway.handle(turn.principal, request_of(turn), request_id=request_id, client=client)
    except JaifError as exc:
        await asyncio.to_thread(_withdraw, sessions, turn)
        yield {**refusal(exc), "withdrawn": True}
        return
    assert isinstance(relay, StreamRelay)  # a streamed request
    parts: list[str] = []
    failure: str | None = None
    status = "cancelled"  # unless the stream runs to its end: the page went away
    try:
        if client is not None:
            client.arm()
        async for event in relay.events:
            for data in _chunks(event):
                if isinstance(data.get("error"), dict):
                    failure = str(data["error"].get("message") or "The model server failed.")
                for choice in data.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        yield {"type": "delta", "text": text}
        status = "error" if failure else "ok"
    finally:
        if client is not None:
            client.disarm()
        # In a task of its own: whatever cancels this one must not cut the settlement or the store short.
        ending = asyncio.ensure_future(_end(relay, sessions, turn, "".join(parts), request_id, status))
        usage, message_id = await asyncio.shield(ending)
    text = "".join(parts)
    yield {"type": "done", "status": status, "error": failure, "html": str(markdown(text)), "message_id": message_id,
           "request_id": request_id, "usage": {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                                               "completion_tokens": int(usage.get("completion_tokens") or 0)}}


async def _end(
    relay: StreamRelay, sessions: sessionmaker[Session], turn: Turn, text: str, request_id: str, status: str
) -> tuple[dict, int | None]:
    """Settle the request (its usage record, the project's charge: StreamRelay.aclose), then store the
    answer with the use charged for it."""
    await relay.aclose()
    usage = await relay.usage()
    return usage, await asyncio.to_thread(_store, sessions, turn, text, usage, request_id, status)


def _chunks(event: bytes) -> list[dict]:
    """The JSON objects in framed server-sent events (``data: {...}``), without ``[DONE]``."""
    found = []
    for line in event.split(b"\n"):
        if line.startswith(b"data: ") and line[6:].strip() != b"[DONE]":
            try:
                data = orjson.loads(line[6:])
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict):
                found.append(data)
    return found


def _withdraw(sessions: sessionmaker[Session], turn: Turn) -> None:
    with transaction(sessions) as session:
        service.withdraw(session=session, turn=turn)


def _store(
    sessions: sessionmaker[Session], turn: Turn, text: str, usage: dict, request_id: str, status: str
) -> int | None:
    with transaction(sessions) as session:
        message = service.record_answer(session=session, conversation_id=turn.conversation_id, content=text,
                                        model=turn.model, usage=usage, request_id=request_id, status=status)
        return message.id if message is not None else None
