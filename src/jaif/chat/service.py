"""The chat's service: a user's conversations (list, open, create, change, delete) and the preparation of a
turn (the user's message stored, the request for the gateway built). Sending it is chat/stream.py's.

Every query is scoped to the acting user: another user's conversation does not exist for them (NotFound),
operators included. A conversation is charged to a project the user is a member of, which must have a
token allocation and be active; each message checks that again (a member who left cannot spend on).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from jaif.access import service as access
from jaif.access.models import Project, ProjectMember
from jaif.access.schemas import Actor, KeyPrincipal
from jaif.chat.models import ChatMessage, Conversation
from jaif.chat.schemas import ConversationSettings, ModelChoice, ProjectChoice
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from jaif.identity.service import wellformed_id
from jaif.inference.gateway import Gateway, model_status

MAX_CONVERSATIONS = 500  # per user
MAX_MESSAGES = 400  # per conversation (the gateway bounds the prompt's size too)
NEW_TITLE = "New chat"


@dataclass(frozen=True)
class Turn:
    """One message on its way: what chat/stream.py sends through the gateway, and where the answer goes."""

    conversation_id: str
    message_id: int  # the user's message, withdrawn if the gateway refuses it
    model: str
    messages: list[dict]
    temperature: float | None
    max_tokens: int | None
    principal: KeyPrincipal


# --- what a user may choose ----------------------------------------------------------------------------


def chat_models(gateway: Gateway, allowed: list[str] | None) -> list[ModelChoice]:
    """The chat models of the gateway's registry that ``allowed`` (a project's allowed_models; None: every
    one) permits, with the status GET /v1/models reports for them (inference/gateway.py model_status)."""
    found = []
    for name, model in sorted(gateway.registry.models.items()):
        if model.kind != "chat" or (allowed is not None and name not in allowed):
            continue
        status = model_status(model)
        found.append(ModelChoice(name, str(status.get("state") or "unavailable"), status.get("estimated_ready_s")))
    return found


def _chat_projects(session: Session, actor: Actor) -> list[Project]:
    """The active projects ``actor`` is a member of that have a token allocation."""
    if actor.user_id is None:
        return []
    return list(session.scalars(
        select(Project).join(ProjectMember, ProjectMember.project_id == Project.id)
        .where(ProjectMember.user_id == actor.user_id, Project.is_active.is_(True), Project.token_quota.is_not(None))
        .order_by(Project.name)
    ))


def choices(*, session: Session, actor: Actor, gateway: Gateway) -> list[ProjectChoice]:
    """The projects ``actor`` may chat in, each with the chat models it may use."""
    return [ProjectChoice(p.id, p.name, chat_models(gateway, p.allowed_models)) for p in _chat_projects(session, actor)]


def _chat_project(session: Session, actor: Actor, project_id: str) -> Project:
    for project in _chat_projects(session, actor):
        if project.id == project_id:
            return project
    raise NotFound("You are not a member of that project, or it has no token allocation.", param="project")


def _check_model(gateway: Gateway, project: Project, model: str) -> None:
    names = {m.name for m in chat_models(gateway, project.allowed_models)}
    if model not in names:
        raise InvalidRequest(f"The project {project.name} may not use a chat model named `{model}`.", param="model")


# --- conversations -------------------------------------------------------------------------------------


def list_conversations(*, session: Session, actor: Actor, limit: int = MAX_CONVERSATIONS) -> list[Conversation]:
    """The user's conversations, the last used first."""
    return list(session.scalars(
        select(Conversation).where(Conversation.user_id == actor.user_id)
        .order_by(Conversation.updated_at.desc(), Conversation.id).limit(limit)
    ))


def get_conversation(*, session: Session, actor: Actor, conversation_id: str) -> Conversation:
    """The user's own conversation; NotFound for any other (another user's too, an operator's as well)."""
    found = None
    if actor.user_id is not None and wellformed_id(conversation_id):
        found = session.scalar(select(Conversation).where(
            Conversation.id == conversation_id, Conversation.user_id == actor.user_id))
    if found is None:
        raise NotFound("There is no such conversation.", param="conversation_id")
    return found


def messages(*, session: Session, actor: Actor, conversation_id: str) -> list[ChatMessage]:
    conversation = get_conversation(session=session, actor=actor, conversation_id=conversation_id)
    return list(session.scalars(
        select(ChatMessage).where(ChatMessage.conversation_id == conversation.id).order_by(ChatMessage.id)
    ))


def create_conversation(
    *, session: Session, actor: Actor, gateway: Gateway, project_id: str, settings: ConversationSettings
) -> Conversation:
    project = _chat_project(session, actor, project_id)
    _check_model(gateway, project, settings.model)
    count = session.scalar(select(func.count()).select_from(Conversation).where(Conversation.user_id == actor.user_id))
    if (count or 0) >= MAX_CONVERSATIONS:
        raise Conflict(f"You have {MAX_CONVERSATIONS} conversations, the most one may keep: delete some first.")
    conversation = Conversation(
        user_id=actor.user_id, project_id=project.id, title=settings.title or NEW_TITLE, model=settings.model,
        system_prompt=settings.system_prompt, temperature=settings.temperature, max_tokens=settings.max_tokens,
    )
    session.add(conversation)
    session.flush()
    return conversation


def update_conversation(
    *, session: Session, actor: Actor, gateway: Gateway, conversation_id: str, settings: ConversationSettings
) -> Conversation:
    """Rename it, or change its model, system prompt, temperature or maximum of tokens per answer."""
    conversation = get_conversation(session=session, actor=actor, conversation_id=conversation_id)
    if settings.model != conversation.model:
        _check_model(gateway, _chat_project(session, actor, conversation.project_id), settings.model)
    conversation.title = settings.title or conversation.title
    conversation.model = settings.model
    conversation.system_prompt = settings.system_prompt
    conversation.temperature = settings.temperature
    conversation.max_tokens = settings.max_tokens
    session.flush()
    return conversation


def delete_conversation(*, session: Session, actor: Actor, conversation_id: str) -> None:
    conversation = get_conversation(session=session, actor=actor, conversation_id=conversation_id)
    session.execute(delete(ChatMessage).where(ChatMessage.conversation_id == conversation.id))
    session.delete(conversation)
    session.flush()


# --- a turn --------------------------------------------------------------------------------------------


def begin_turn(*, session: Session, actor: Actor, conversation_id: str, content: str) -> Turn:
    """Store the user's message and build the request that carries the conversation so far. Raises
    NotFound (not the user's conversation, or no longer a member of its project), Forbidden (the member's
    chat key in the project was revoked), Conflict (the conversation is full)."""
    conversation = get_conversation(session=session, actor=actor, conversation_id=conversation_id)
    assert actor.user_id is not None
    _chat_project(session, actor, conversation.project_id)
    principal = _principal(session, conversation.project_id, actor.user_id)
    earlier = list(session.scalars(
        select(ChatMessage).where(ChatMessage.conversation_id == conversation.id).order_by(ChatMessage.id)
    ))
    if len(earlier) >= MAX_MESSAGES:
        raise Conflict(f"This conversation has {MAX_MESSAGES} messages, the most one may hold: start a new one.")
    mine = ChatMessage(conversation_id=conversation.id, role="user", content=content)
    session.add(mine)
    if conversation.title == NEW_TITLE:
        conversation.title = _title_of(content)
    conversation.updated_at = utcnow()
    session.flush()
    history = [{"role": "system", "content": conversation.system_prompt}] if conversation.system_prompt else []
    history += [{"role": m.role, "content": m.content} for m in earlier if m.content]
    history.append({"role": "user", "content": content})
    return Turn(conversation.id, mine.id, conversation.model, history, conversation.temperature,
                conversation.max_tokens, principal)


def _principal(session: Session, project_id: str, user_id: str) -> KeyPrincipal:
    try:
        return access.chat_principal(session=session, project_id=project_id, user_id=user_id)
    except Unauthorized as exc:
        raise Forbidden(
            "Your chat in this project is switched off: its key “Chat in the portal” was revoked, or the "
            f"project is not active ({exc.message}). Ask the project's principal investigator.",
            code=exc.code,
        ) from exc


def _title_of(content: str) -> str:
    line = " ".join(content.split())
    return (line[:60] + "…") if len(line) > 60 else (line or NEW_TITLE)


def withdraw(*, session: Session, turn: Turn) -> None:
    """Take back a message the gateway refused (nothing was charged): the conversation stays as it was, and
    the page puts the text back in the box to send again."""
    session.execute(delete(ChatMessage).where(ChatMessage.id == turn.message_id,
                                              ChatMessage.conversation_id == turn.conversation_id))


def record_answer(
    *, session: Session, conversation_id: str, content: str, model: str, usage: dict | None, request_id: str | None,
    status: str,
) -> ChatMessage | None:
    """Store an answer (what came of it, with its use as charged) after its stream ended; None if the
    conversation was deleted meanwhile (the charge stands: its usage record is written either way)."""
    if session.get(Conversation, conversation_id) is None:
        return None
    message = ChatMessage(
        conversation_id=conversation_id, role="assistant", content=content, model=model,
        prompt_tokens=int((usage or {}).get("prompt_tokens") or 0),
        completion_tokens=int((usage or {}).get("completion_tokens") or 0), request_id=request_id, status=status,
    )
    session.add(message)
    session.execute(update(Conversation).where(Conversation.id == conversation_id).values(updated_at=utcnow()))
    session.flush()
    return message
