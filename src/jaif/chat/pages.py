"""The chat in the portal (docs/chat.md): ``/chat`` (the user's conversations and a new one: project, model,
title, system prompt, temperature, maximum of tokens), ``/chat/{id}`` (a conversation: its messages, the
box to write in, its settings; rename, delete), and ``POST /chat/{id}/messages``, which sends a message.

A message sent by the page's script (/static/chat.js: JSON, with the session's CSRF token in a header)
is answered with its events as NDJSON, streamed while the model writes (chat/stream.py); a message sent
by the plain form (no script) is answered once the answer is complete, with the conversation's page. Every
route is for the signed-in user's own conversations only (chat/service.py); the CSRF middleware checks
each POST.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from jaif.access.schemas import Actor
from jaif.chat import service, stream
from jaif.chat.render import markdown
from jaif.chat.schemas import MAX_MESSAGE_CHARS, ConversationSettings, MessageIn
from jaif.errors import InvalidRequest, JaifError
from jaif.identity.deps import PageUser
from jaif.inference.endpoints import Hangup, Sweeper
from jaif.inference.gateway import ClientWatch, Gateway
from jaif.web.deps import DB
from jaif.web.display import render, sentence
from jaif.web.forms import FormFields, attempt
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)

SETTING_FIELDS = ("title", "model", "system_prompt", "temperature", "max_tokens")


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def settings_of(fields: dict[str, str]) -> tuple[ConversationSettings | None, dict[str, str]]:
    """A conversation's settings from a posted form, or the errors by field (the input is kept by the page)."""
    values: dict = {name: fields.get(name, "").strip() for name in SETTING_FIELDS}
    values["system_prompt"] = fields.get("system_prompt", "")
    errors: dict[str, str] = {}
    for name, kind in (("temperature", float), ("max_tokens", int)):
        if values[name] == "":
            values[name] = None
            continue
        try:
            values[name] = kind(values[name])
        except ValueError:
            errors[name] = "Enter a number." if kind is float else "Enter a whole number."
    if errors:
        return None, errors
    try:
        return ConversationSettings.model_validate(values), {}
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(name, sentence(error["msg"]))
        return None, errors


def _index(request: Request, session: Session, actor: Actor, *, values: dict | None = None,
           errors: dict | None = None, status_code: int = 200) -> Response:
    projects = service.choices(session=session, actor=actor, gateway=_gateway(request))
    models = sorted({(m.name, m.label) for p in projects for m in p.models})
    first = projects[0] if projects else None
    defaults = {"project": first.id if first else "", "model": first.models[0].name if first and first.models else ""}
    return render(request, "chat/index.html", status_code, section="chat", projects=projects, models=models,
                  project_options=[(p.id, p.name) for p in projects],
                  conversations=service.list_conversations(session=session, actor=actor),
                  values={**defaults, **(values or {})}, errors=errors or {})


@router.get("/chat")
def chat_home(request: Request, session: DB, actor: PageUser) -> Response:
    return _index(request, session, actor)


@router.post("/chat")
def new_conversation(request: Request, session: DB, actor: PageUser, fields: FormFields) -> Response:
    settings, errors = settings_of(fields)
    values = {**{k: fields.get(k, "") for k in SETTING_FIELDS}, "project": fields.get("project", "")}
    if settings is None:
        return _index(request, session, actor, values=values, errors=errors, status_code=400)
    try:
        conversation = attempt(session, lambda: service.create_conversation(
            session=session, actor=actor, gateway=_gateway(request), project_id=values["project"], settings=settings))
    except JaifError as exc:
        field = exc.param if exc.param in (*SETTING_FIELDS, "project") else "form"
        return _index(request, session, actor, values=values, errors={field: sentence(exc.message)},
                      status_code=exc.status)
    return RedirectResponse(f"/chat/{quote(conversation.id, safe='')}", status_code=303)


def _conversation(request: Request, session: Session, actor: Actor, conversation_id: str, *,
                  values: dict | None = None, errors: dict | None = None, status_code: int = 200) -> Response:
    conversation = service.get_conversation(session=session, actor=actor, conversation_id=conversation_id)
    found = service.messages(session=session, actor=actor, conversation_id=conversation_id)
    projects = {p.id: p for p in service.choices(session=session, actor=actor, gateway=_gateway(request))}
    project = projects.get(conversation.project_id)
    shown = {k: getattr(conversation, k) for k in SETTING_FIELDS}
    return render(
        request, "chat/conversation.html", status_code, section="chat", conversation=conversation,
        chat_messages=[(m, markdown(m.content)) for m in found], project=project,
        project_name=project.name if project else None,
        models=[(m.name, m.label) for m in (project.models if project else [])],
        conversations=service.list_conversations(session=session, actor=actor),
        values={**{k: "" if v is None else v for k, v in shown.items()}, **(values or {})}, errors=errors or {},
        max_chars=MAX_MESSAGE_CHARS,
        current=next((m for m in (project.models if project else []) if m.name == conversation.model), None),
    )


@router.get("/chat/{conversation_id}")
def open_conversation(request: Request, session: DB, actor: PageUser, conversation_id: str) -> Response:
    return _conversation(request, session, actor, conversation_id)


@router.post("/chat/{conversation_id}/settings")
def change_conversation(request: Request, session: DB, actor: PageUser, conversation_id: str,
                        fields: FormFields) -> Response:
    settings, errors = settings_of(fields)
    values = {k: fields.get(k, "") for k in SETTING_FIELDS}
    if settings is None:
        return _conversation(request, session, actor, conversation_id, values=values, errors=errors, status_code=400)
    try:
        attempt(session, lambda: service.update_conversation(
            session=session, actor=actor, gateway=_gateway(request), conversation_id=conversation_id,
            settings=settings))
    except JaifError as exc:
        if exc.status == 404:
            raise
        field = exc.param if exc.param in SETTING_FIELDS else "model"
        return _conversation(request, session, actor, conversation_id, values=values,
                             errors={field: sentence(exc.message)}, status_code=exc.status)
    flash(request, "The conversation's settings are saved.", "success")
    return RedirectResponse(f"/chat/{quote(conversation_id, safe='')}", status_code=303)


@router.post("/chat/{conversation_id}/delete")
def delete_conversation(request: Request, session: DB, actor: PageUser, conversation_id: str) -> Response:
    service.delete_conversation(session=session, actor=actor, conversation_id=conversation_id)
    flash(request, "The conversation is deleted.", "success")
    return RedirectResponse("/chat", status_code=303)


async def _content(request: Request) -> tuple[str, bool]:
    """The message's text, and whether the page's script sent it (JSON) rather than the plain form."""
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise InvalidRequest("The message is not JSON.", param="content") from None
        scripted = True
    else:
        data = {"content": (await request.form()).get("content", "")}
        scripted = False
    try:
        return MessageIn.model_validate(data if isinstance(data, dict) else {}).content, scripted
    except ValidationError:
        raise InvalidRequest(
            f"Write a message of 1 to {MAX_MESSAGE_CHARS:,} characters.", param="content") from None


@router.post("/chat/{conversation_id}/messages")
async def send_message(request: Request, session: DB, actor: PageUser, conversation_id: str) -> Response:
    """Store the message (committed before the answer comes), then send it through the gateway."""
    try:
        content, scripted = await _content(request)
        turn = await run_in_threadpool(_begin, session, actor, conversation_id, content)
    except JaifError as exc:
        if request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({**stream.refusal(exc), "withdrawn": True}, status_code=exc.status)
        if exc.status == 404:
            raise
        flash(request, sentence(exc.message), "error")
        return RedirectResponse(f"/chat/{quote(conversation_id, safe='')}", status_code=303)
    gateway, sessions = _gateway(request), request.app.state.runtime.session_factory
    if scripted:
        return AnswerStream(lambda client: stream.answer(gateway=gateway, sessions=sessions, turn=turn, client=client))
    async for event in stream.answer(gateway=gateway, sessions=sessions, turn=turn):  # the plain form
        if event["type"] == "error":
            flash(request, f"{event['headline']} {event['text']}", "error")
    return RedirectResponse(f"/chat/{quote(conversation_id, safe='')}#last", status_code=303)


def _begin(session: Session, actor: Actor, conversation_id: str, content: str) -> service.Turn:
    """The turn begun and committed: the message is stored, and the answer's own transaction (stream.py)
    does not wait for this request's (SQLite has one writer at a time)."""
    turn = service.begin_turn(session=session, actor=actor, conversation_id=conversation_id, content=content)
    session.commit()
    return turn


class AnswerStream(StreamingResponse):
    """A turn's events as NDJSON, streamed as /v1 streams its answers (inference/endpoints.py): the page
    leaving is seen through ASGI's ``http.disconnect`` by a Hangup, which, while armed, cancels the answer
    once, at the await under way (an upstream call, the stream's next event); the gateway settles the
    request as cancelled, and the answer is stored as far as it came. (Starlette's own streaming would
    cancel the response's task group, and with it every later await of the settlement.)"""

    def __init__(self, answer: Callable[[ClientWatch], AsyncGenerator[dict, None]]) -> None:
        super().__init__(iter(()), media_type="application/x-ndjson",
                         headers={"cache-control": "no-store", "x-accel-buffering": "no"})
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = Hangup(receive, Sweeper())
        events = self.answer(client)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for event in events:
                await send({"type": "http.response.body", "body": orjson.dumps(event) + b"\n", "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except asyncio.CancelledError:
            if not client.left():
                raise  # not the page leaving: the server is stopping
        finally:
            await events.aclose()  # an answer cut short is settled and stored now
