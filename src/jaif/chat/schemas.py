"""What the chat pages send and show: a conversation's settings, a message, the choices of a new chat."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_MESSAGE_CHARS = 32_000
MAX_SYSTEM_PROMPT_CHARS = 8_000
MAX_TITLE_CHARS = 200
MAX_TOKENS_LIMIT = 1_000_000

Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_TITLE_CHARS)]


class ConversationSettings(BaseModel):
    """A conversation's model and sampling: the same for every message sent in it (until changed)."""

    model_config = ConfigDict(extra="forbid")

    title: Title = ""
    model: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    system_prompt: Annotated[str, Field(max_length=MAX_SYSTEM_PROMPT_CHARS)] = ""
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)] | None = None


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]


@dataclass(frozen=True)
class ModelChoice:
    """A chat model a project may use, with its status as /v1/models reports it."""

    name: str
    state: str  # ready | starting | cold | unavailable
    estimated_ready_s: float | None = None

    @property
    def label(self) -> str:
        if self.state == "ready":
            return f"{self.name} (ready)"
        if self.state in ("cold", "starting"):
            wait = f", about {self.estimated_ready_s:.0f} s to start" if self.estimated_ready_s else ""
            return f"{self.name} ({self.state}{wait})"
        return f"{self.name} ({self.state})"


@dataclass(frozen=True)
class ProjectChoice:
    id: str
    name: str
    models: list[ModelChoice]
