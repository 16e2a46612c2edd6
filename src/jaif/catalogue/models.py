"""Domain solutions with model cards."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from jaif.db.base import Base, UTCDateTime, new_id, utcnow
from jaif.inference.models import Model


class Solution(Base):
    __tablename__ = "solutions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    domain: Mapped[str] = mapped_column(String(100), default="")  # health, climate, materials, public sector, ...
    # The model card.
    licence: Mapped[str] = mapped_column(String(200), default="")
    intended_use: Mapped[str] = mapped_column(Text, default="")
    limitations: Mapped[str] = mapped_column(Text, default="")
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    training_data: Mapped[str] = mapped_column(Text, default="")
    # The gateway model that serves it, if any: then it can be called with a project key.
    model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), nullable=True)
    is_published: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    model: Mapped[Model | None] = relationship()
