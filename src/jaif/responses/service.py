"""The Responses API's service: create (through the gateway's chat pipeline), retrieve, delete, input items.

``create`` translates the request onto a chat completion (translate.py) and hands it to
``Gateway.handle``, which authorises the model, takes the quota and rate limit, routes with failover,
watches for the client hanging up and meters the call, as for /v1/chat/completions (the usage record's
endpoint is ``chat.completions``). Stored responses (``store``, the default) belong to the key's project,
and every query here is scoped to it: another project's response is a 404, as one that does not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jaif.access.schemas import KeyPrincipal
from jaif.db.engine import transaction
from jaif.errors import NotFound
from jaif.inference.gateway import ClientWatch, Gateway
from jaif.inference.protocol import parse_request
from jaif.inference.streaming import StreamRelay
from jaif.responses.models import StoredResponse
from jaif.responses.schemas import ResponseCreate
from jaif.responses.stream import ResponseStream
from jaif.responses.translate import (
    chat_messages,
    chat_request,
    input_items,
    new_id,
    output_items,
    response_object,
    usage,
)


async def create_response(
    *, gateway: Gateway, sessions: sessionmaker[Session], principal: KeyPrincipal, raw: bytes,
    client: ClientWatch | None = None, request_id: str | None = None, client_request_id: str | None = None,
) -> dict[str, Any] | ResponseStream | StreamRelay:  # fmt: skip
    """The response to the request ``raw`` (a JSON body), or for ``stream`` its events. For a model whose
    upstream speaks the Responses API itself (``--responses-api native``) the request is passed through
    as it came (inference/passthrough.py): the upstream, not jaif, stores its responses then."""
    native = _native(gateway, raw)
    if native is not None:
        return await gateway.responses(principal, native, len(raw), client=client, request_id=request_id,
                                       client_request_id=client_request_id)
    create: ResponseCreate = parse_request(ResponseCreate, raw)  # type: ignore[assignment]
    create.refused()
    items = input_items(create)
    history: list[dict[str, Any]] = []
    if create.previous_response_id is not None:
        history = await asyncio.to_thread(
            _conversation, sessions, project_id=principal.project_id, response_id=create.previous_response_id
        )
    chat = chat_request(create, history, items)
    response_id = new_id("resp")
    store = _storer(sessions, principal.project_id, create, items, history)
    result = await gateway.handle(principal, chat, client=client, request_id=request_id,
                                  client_request_id=client_request_id)
    if isinstance(result, StreamRelay):
        return ResponseStream(create, response_id, result, store)
    output, incomplete = output_items(result)
    final = response_object(
        create, response_id, status="incomplete" if incomplete else "completed", output=output,
        incomplete=incomplete, usage=usage(result.get("usage")),
    )  # fmt: skip
    await store(final)
    return final


def _native(gateway: Gateway, raw: bytes) -> dict[str, Any] | None:
    """The request's body, where its model speaks the Responses API itself; else None (translated)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # parse_request says what is wrong with it
    return body if isinstance(body, dict) and gateway.speaks_responses(body.get("model")) else None


def _storer(
    sessions: sessionmaker[Session], project_id: str, create: ResponseCreate, items: list[dict[str, Any]],
    history: list[dict[str, Any]],
) -> Callable[[dict[str, Any]], Awaitable[None]]:  # fmt: skip
    async def store(final: dict[str, Any]) -> None:
        if create.store is False:
            return
        row = StoredResponse(
            id=final["id"], project_id=project_id, model=create.model, previous_response_id=create.previous_response_id,
            body=final, input_items=items, conversation=history + chat_messages(items + final["output"]),
        )  # fmt: skip
        await asyncio.to_thread(_save, sessions, row)

    return store


def _save(sessions: sessionmaker[Session], row: StoredResponse) -> None:
    with transaction(sessions) as session:
        session.add(row)


def _conversation(sessions: sessionmaker[Session], *, project_id: str, response_id: str) -> list[dict[str, Any]]:
    with transaction(sessions) as session:
        row = _find(session, project_id=project_id, response_id=response_id, param="previous_response_id")
        return list(row.conversation)


def _find(session: Session, *, project_id: str, response_id: str, param: str | None = None) -> StoredResponse:
    row = session.scalar(
        select(StoredResponse).where(StoredResponse.id == response_id, StoredResponse.project_id == project_id)
    )
    if row is None:
        raise NotFound(f"Response with id '{response_id}' not found.", param=param)
    return row


def get_response(*, session: Session, project_id: str, response_id: str) -> dict[str, Any]:
    return _find(session, project_id=project_id, response_id=response_id).body


def delete_response(*, session: Session, project_id: str, response_id: str) -> dict[str, Any]:
    session.delete(_find(session, project_id=project_id, response_id=response_id))
    return {"id": response_id, "object": "response", "deleted": True}


def list_input_items(
    *, session: Session, project_id: str, response_id: str, limit: int = 20, order: str = "desc",
    after: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A page of a response's input items, OpenAI's cursor list: newest first unless ``order`` is asc."""
    items = list(_find(session, project_id=project_id, response_id=response_id).input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}  # fmt: skip
