"""Access calls: what a call offers, to whom, how applications are reviewed, how fast access should be."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jaif.db.base import Base, UTCDateTime, new_id, utcnow


class CallKind(enum.StrEnum):
    playground = "playground"
    fast_lane = "fast_lane"
    large_scale = "large_scale"
    inference_only = "inference_only"
    custom = "custom"


class ReviewMode(enum.StrEnum):
    automatic = "automatic"  # eligible applications are accepted and allocated at once
    technical = "technical"  # a technical review, then the operator decides
    peer = "peer"  # technical review, then peer review, then the operator decides


class AccessCall(Base):
    __tablename__ = "access_calls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Peer-review cut-offs (ISO dates): applications submitted by a cut-off are reviewed together.
    cutoffs: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Resources offered in total: GPU-hours per partition, and inference tokens.
    offered_gpu_hours: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    offered_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # Most one application may ask for (None: no limit), and the durations it may choose.
    max_gpu_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    min_gpu_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    durations_months: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Eligibility: sectors allowed (empty: all), countries allowed (None: EU and associated countries).
    eligible_sectors: Mapped[list[str]] = mapped_column(JSON, default=list)
    eligible_countries: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    review_mode: Mapped[str] = mapped_column(String(20), default=ReviewMode.technical)
    target_days_to_access: Mapped[int] = mapped_column(Integer, default=10)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
