"""A stored file: its bytes live under ``Settings.files_dir`` (store.py), its row here, in its project."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from jaif.db.base import Base, UTCDateTime, utcnow


class StoredFile(Base):
    __tablename__ = "files"
    __table_args__ = (Index("ix_files_project_created", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "file-<hex>", as OpenAI's
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(20))  # batch (uploaded) | batch_output (a batch's results)
    filename: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(Integer, default=0)  # requests in a batch input file
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)
