"""Inference models: served models, their aliases and their replicas."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class ModelKind(enum.StrEnum):
    chat = "chat"
    embedding = "embedding"
    rerank = "rerank"  # a cross-encoder served at /rerank (vLLM's Cohere/Jina shape): POST /v1/rerank


# How POST /v1/responses reaches a chat model: translated onto chat completions (every OpenAI-compatible
# server), or passed through to an upstream that serves /v1/responses itself (vLLM, OpenAI).
RESPONSES_TRANSLATE, RESPONSES_NATIVE = "translate", "native"
RESPONSES_APIS = (RESPONSES_TRANSLATE, RESPONSES_NATIVE)


class Model(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default=ModelKind.chat)
    context_length: Mapped[int] = mapped_column(Integer, default=4096)
    licence: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    owned_by: Mapped[str] = mapped_column(String(200), default="jaif")
    # The model id to send upstream, when it differs from the public name.
    upstream_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Sent as the bearer token to upstreams; an operator secret, never shown in listings.
    upstream_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Path of the model's tokenizer.json, to count tokens where an upstream reports no usage.
    tokenizer: Mapped[str | None] = mapped_column(String(500), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    responses_api: Mapped[str] = mapped_column(String(20), default=RESPONSES_TRANSLATE,
                                               server_default=RESPONSES_TRANSLATE)  # fmt: skip
    # The model's own upstream time limits, in seconds; NULL: the inference.*_timeout_s setting.
    ttfb_timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    idle_timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    request_timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)

    aliases: Mapped[list[ModelAlias]] = relationship(back_populates="model", cascade="all, delete-orphan")
    replicas: Mapped[list[Replica]] = relationship(back_populates="model", cascade="all, delete-orphan")


class ModelAlias(Base):
    """A name that points at a model and can be re-pointed without breaking clients."""

    __tablename__ = "model_aliases"

    alias: Mapped[str] = mapped_column(String(200), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    model: Mapped[Model] = relationship(back_populates="aliases")


class Replica(Base):
    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    # An OpenAI-compatible base URL (ending in /v1), or builtin:<name> for an in-process model.
    url: Mapped[str] = mapped_column(String(500))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    model: Mapped[Model] = relationship(back_populates="replicas")
