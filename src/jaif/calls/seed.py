"""The three EuroHPC AI Factory-style calls made on first start; operators change or close them later.

Modelled on the AI Factory access calls of EuroHPC JU (2025): Playground (entry level, first come first
served, access in about 2 working days; a JUPITER award was 5,000 GPU-hours over 2 months), Fast Lane
(up to 50,000 GPU-hours for 1 to 3 months, about 4 working days), Large Scale (more than 50,000
GPU-hours for 3, 6 or 12 months, peer review at monthly cut-offs).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from jaif.calls.models import AccessCall, CallKind, ReviewMode
from jaif.db.base import utcnow

PARTITION = "booster"  # the GPU partition the seeded calls offer unless the site has another (jaif init)


def _monthly_cutoffs(start: date, months: int = 12) -> list[str]:
    """The first day of each of the next ``months`` months."""
    out = []
    year, month = start.year, start.month
    for _ in range(months):
        month += 1
        if month > 12:
            year, month = year + 1, 1
        out.append(date(year, month, 1).isoformat())
    return out


def seed_definitions(partition: str = PARTITION) -> list[dict]:
    now = utcnow()
    return [
        dict(
            slug="playground",
            name="Playground",
            kind=CallKind.playground,
            description=(
                "Entry-level access to try the AI Factory: small GPU allocations and inference tokens, "
                "first come, first served. Eligible applications are accepted and allocated at once."
            ),
            offered_gpu_hours={partition: 250_000.0},
            offered_tokens=10_000_000_000,
            max_gpu_hours=5_000.0,
            max_tokens=10_000_000,
            durations_months=[1, 2],
            review_mode=ReviewMode.automatic,
            target_days_to_access=2,
        ),
        dict(
            slug="fast-lane",
            name="Fast Lane",
            kind=CallKind.fast_lane,
            description=(
                "Up to 50,000 GPU-hours for 1 to 3 months, for projects ready to run: a technical review, "
                "then a decision within about 4 working days."
            ),
            offered_gpu_hours={partition: 1_000_000.0},
            offered_tokens=20_000_000_000,
            max_gpu_hours=50_000.0,
            max_tokens=100_000_000,
            durations_months=[1, 2, 3],
            review_mode=ReviewMode.technical,
            target_days_to_access=4,
        ),
        dict(
            slug="large-scale",
            name="Large Scale",
            kind=CallKind.large_scale,
            description=(
                "More than 50,000 GPU-hours for 3, 6 or 12 months: technical and peer review of the "
                "applications submitted by each monthly cut-off."
            ),
            offered_gpu_hours={partition: 10_000_000.0},
            offered_tokens=50_000_000_000,
            min_gpu_hours=50_001.0,
            max_tokens=1_000_000_000,
            durations_months=[3, 6, 12],
            cutoffs=_monthly_cutoffs(now.date()),
            review_mode=ReviewMode.peer,
            target_days_to_access=40,
        ),
    ]


def seed_calls(session: Session, partition: str = PARTITION) -> list[AccessCall]:
    """On first start (no call exists yet), create the three calls offering GPU-hours on ``partition``
    (the site's, chosen by `jaif init`: compute/site.py ``preferred_partition``); returns those it created."""
    if session.scalar(select(AccessCall.id).limit(1)) is not None:
        return []
    now = utcnow()
    calls = [
        AccessCall(opens_at=now, eligible_sectors=[], eligible_countries=None, **d)
        for d in seed_definitions(partition)
    ]
    session.add_all(calls)
    session.flush()
    return calls
