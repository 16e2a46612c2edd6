"""A stored response: what ``previous_response_id``, retrieve, delete and ``input_items`` read.

Each row belongs to the project whose key created it; every query is scoped to that project.
``conversation`` is the chat history a follow-up continues (the earlier turns, this turn's input and its
output, as chat messages; without ``instructions``, which a follow-up does not inherit, as in OpenAI's API).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from jaif.db.base import Base, UTCDateTime, utcnow


class StoredResponse(Base):
    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_project_id_created_at", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # resp_...
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)
    model: Mapped[str] = mapped_column(String(200))
    previous_response_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[dict] = mapped_column(JSON)  # the response object, as retrieve returns it
    input_items: Mapped[list] = mapped_column(JSON)  # this turn's input items, with their ids
    conversation: Mapped[list] = mapped_column(JSON)  # chat messages a follow-up continues from
