"""Time-to-access: from submission to allocation, per application and per call.

Working days count Monday to Friday (UTC), as whole 24-hour days: an application submitted on Friday
at 16:00 and allocated on Monday at 10:00 took 18 hours of working time, 0.75 working days. Public
holidays differ per country and are not taken out.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from jaif.applications.models import Application, ApplicationState
from jaif.applications.schemas import TimeToAccess
from jaif.calls.models import AccessCall
from jaif.calls.schemas import TimeToAccessOut
from jaif.db.base import utcnow

_DAY = 86400.0
PENDING = (
    ApplicationState.submitted,
    ApplicationState.technical_review,
    ApplicationState.peer_review,
    ApplicationState.accepted,
)


_WEEK = 7 * _DAY
_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC: weeks are counted from here


def _working_seconds(moment: datetime) -> float:
    """Working seconds (Monday to Friday, UTC) from _MONDAY to ``moment``: each week has 5 days of them."""
    epoch = _MONDAY if moment.tzinfo is not None else _MONDAY.replace(tzinfo=None)
    weeks, into_week = divmod((moment - epoch).total_seconds(), _WEEK)
    return weeks * 5 * _DAY + min(into_week, 5 * _DAY)


def working_days(start: datetime, end: datetime) -> float:
    """Working time between ``start`` and ``end`` in days of 24 hours, Saturdays and Sundays left out.

    O(1): the difference of the working seconds since a fixed Monday (time-to-access of a call runs this
    for each of its allocated applications)."""
    if end <= start:
        return 0.0
    return max(0.0, _working_seconds(end) - _working_seconds(start)) / _DAY


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def for_application(application: Application, *, now: datetime | None = None) -> TimeToAccess | None:
    """Submitted to allocated; while not allocated, submitted to now. None for drafts."""
    if application.submitted_at is None:
        return None
    end = application.allocated_at or now or utcnow()
    days = working_days(application.submitted_at, end)
    target = application.call.target_days_to_access
    return TimeToAccess(
        submitted_at=application.submitted_at,
        allocated_at=application.allocated_at,
        hours=round((end - application.submitted_at).total_seconds() / 3600, 2),
        working_days=round(days, 3),
        target_days=target,
        within_target=(days <= target) if application.allocated_at is not None else None,
    )


def for_call(session: Session, call: AccessCall) -> TimeToAccessOut:
    """Median and 90th percentile of working days to access, and the share within the call's target."""
    done = (Application.call_id == call.id, Application.allocated_at.is_not(None),
            Application.submitted_at.is_not(None))
    if session.get_bind().dialect.name == "postgresql":  # in the database: calls have tens of thousands
        allocated, median, p90, within = _aggregate_postgresql(session, done, call.target_days_to_access)
    else:
        days = [working_days(s, a) for s, a in session.execute(select(Application.submitted_at,
                                                                          Application.allocated_at).where(*done))]
        allocated, median, p90 = len(days), percentile(days, 50), percentile(days, 90)
        within = sum(d <= call.target_days_to_access for d in days)
    pending = session.scalar(
        select(func.count())
        .select_from(Application)
        .where(Application.call_id == call.id, Application.state.in_(PENDING))
    )
    return TimeToAccessOut(
        call_id=call.id,
        call_slug=call.slug,
        target_days=call.target_days_to_access,
        allocated=allocated,
        pending=pending or 0,
        median_days=round(median, 3) if median is not None else None,
        p90_days=round(p90, 3) if p90 is not None else None,
        within_target=round(within / allocated, 4) if allocated else None,
    )


def _working_seconds_sql(column):
    """_working_seconds in PostgreSQL: working seconds from _MONDAY to ``column``."""
    since = func.date_part("epoch", column) - _MONDAY.timestamp()
    weeks = func.floor(since / _WEEK)
    return weeks * (5 * _DAY) + func.least(since - weeks * _WEEK, 5 * _DAY)


def _aggregate_postgresql(session: Session, where, target: int) -> tuple[int, float | None, float | None, int]:
    """Allocated, median and 90th percentile of working days (interpolated as ``percentile``), and how many
    within ``target``, in one query that reads ix_applications_call_allocated alone."""
    span = _working_seconds_sql(Application.allocated_at) - _working_seconds_sql(Application.submitted_at)
    spans = select((func.greatest(span, 0.0) / _DAY).label("days")).where(*where).cte("spans")
    days = spans.prefix_with("MATERIALIZED").c.days  # each row's days computed once, not per aggregate
    allocated, quantiles, within = session.execute(
        select(
            func.count(),
            func.percentile_cont(postgresql.array([0.5, 0.9])).within_group(days),
            func.count().filter(days <= target),
        )
    ).one()
    median, p90 = quantiles if quantiles is not None else (None, None)
    return allocated, median, p90, within
