"""Time-to-access: from submission to allocation, per application and per call.

Working days count Monday to Friday (UTC), as whole 24-hour days: an application submitted on Friday
at 16:00 and allocated on Monday at 10:00 took 18 hours of working time, 0.75 working days. Public
holidays differ per country and are not taken out.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import ColumnElement, Integer, Select, String, bindparam, func, select
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
    if session.get_bind().dialect.name == "postgresql":  # in the database: calls have tens of thousands
        row = session.execute(_aggregate_postgresql(), {"call_id": call.id, "target": call.target_days_to_access})
        allocated, quantiles, within, pending = row.one()
        median, p90 = quantiles if quantiles is not None else (None, None)
    else:
        done = (Application.call_id == call.id, Application.allocated_at.is_not(None),
                Application.submitted_at.is_not(None))
        ends = session.execute(select(Application.submitted_at, Application.allocated_at).where(*done))
        days = [working_days(s, a) for s, a in ends if s is not None and a is not None]  # None: excluded by done
        allocated, median, p90 = len(days), percentile(days, 50), percentile(days, 90)
        within = sum(d <= call.target_days_to_access for d in days)
        pending = session.scalar(_pending(Application.call_id == call.id))
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


def _pending(of_call: ColumnElement[bool]) -> Select[int]:
    return select(func.count()).select_from(Application).where(of_call, Application.state.in_(PENDING))


@cache  # the statement, built once: its call and target are bound parameters
def _aggregate_postgresql() -> Select:
    """Allocated, median and 90th percentile of working days (interpolated as ``percentile``), how many
    within the target, and how many pending, of the call ``:call_id`` with target ``:target``, in one
    statement: the allocated ones from ix_applications_call_allocated alone, the pending from
    ix_applications_call_state.

    ``_working_seconds`` of both ends, step by step: each step a subquery that PostgreSQL may not fold
    into the next (OFFSET 0), so that each row's epochs, weeks and days are computed once, not once per
    use (folded, the expression computes each epoch four times and the days once per aggregate)."""
    call_id = bindparam("call_id", type_=String)
    epochs = select(
        (func.date_part("epoch", Application.allocated_at) - _MONDAY.timestamp()).label("a"),
        (func.date_part("epoch", Application.submitted_at) - _MONDAY.timestamp()).label("s"),
    ).where(Application.call_id == call_id, Application.allocated_at.is_not(None),
            Application.submitted_at.is_not(None)).offset(0).subquery("epochs")
    a, s = epochs.c.a, epochs.c.s
    weeks = (
        select(a, s, func.floor(a / _WEEK).label("wa"), func.floor(s / _WEEK).label("ws")).offset(0).subquery("weeks")
    )
    span = (weeks.c.wa * (5 * _DAY) + func.least(weeks.c.a - weeks.c.wa * _WEEK, 5 * _DAY)) - (
        weeks.c.ws * (5 * _DAY) + func.least(weeks.c.s - weeks.c.ws * _WEEK, 5 * _DAY)
    )
    spans = select((func.greatest(span, 0.0) / _DAY).label("days")).offset(0).subquery("spans")
    days = spans.c.days
    return select(
        func.count(),
        func.percentile_cont(postgresql.array([0.5, 0.9])).within_group(days),
        func.count().filter(days <= bindparam("target", type_=Integer)),
        _pending(Application.call_id == call_id).scalar_subquery(),
    )
