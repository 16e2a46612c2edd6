"""Access calls: operators create and change them; everyone may read the active ones.

A call is found by its id or its slug. Non-operators see only active calls in lists (an inactive one
is still readable by id, for the applications made to it).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from jaif.access.models import Sector
from jaif.access.schemas import Actor
from jaif.calls.eligibility import normalise_country, window_problem
from jaif.calls.models import AccessCall, CallKind, ReviewMode
from jaif.calls.schemas import CallIn, CallOut, CallPatch
from jaif.db.base import utcnow
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_REF = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")  # an id (hex) or a slug


def is_open(call: AccessCall, now: datetime | None = None) -> bool:
    return window_problem(call.opens_at, call.closes_at, call.is_active, now or utcnow()) is None


def next_cutoff(call: AccessCall, today: date | None = None) -> str | None:
    """The first cut-off on or after ``today``: applications submitted by then are reviewed together."""
    today = today or utcnow().date()
    upcoming = sorted(c for c in call.cutoffs if c >= today.isoformat())
    return upcoming[0] if upcoming else None


def out(call: AccessCall) -> CallOut:
    return CallOut.model_validate(
        {
            **{c.key: getattr(call, c.key) for c in AccessCall.__table__.columns},
            "next_cutoff": next_cutoff(call),
            "is_open": is_open(call),
        }
    )


def _check(values: dict[str, Any], partitions: Collection[str] | None = None) -> dict[str, Any]:
    """Rules pydantic cannot see: ranges, partitions (those of ``partitions``, the site's, when given),
    countries. Returns the values to store."""
    if "cutoffs" in values and values["cutoffs"] is not None:
        values["cutoffs"] = sorted({d.isoformat() if isinstance(d, date) else str(d) for d in values["cutoffs"]})
    for partition, hours in (values.get("offered_gpu_hours") or {}).items():
        if not partition.strip() or len(partition) > 100:
            raise InvalidRequest("partition names must be 1 to 100 characters", param="offered_gpu_hours")
        if not 0 <= hours <= 1e12:
            raise InvalidRequest(f"GPU-hours offered on {partition} must be 0 or more", param="offered_gpu_hours")
        if partitions is not None and partition not in partitions:
            raise InvalidRequest(
                f"this site has no partition {partition!r}; it has {', '.join(sorted(partitions)) or 'none'}",
                param="offered_gpu_hours",
            )
    for months in values.get("durations_months") or []:
        if not 1 <= months <= 60:
            raise InvalidRequest("durations must be 1 to 60 months", param="durations_months")
    if values.get("durations_months") is not None:
        values["durations_months"] = sorted(set(values["durations_months"]))
    countries = values.get("eligible_countries")
    if countries is not None:
        codes = [normalise_country(c) for c in countries]
        bad = [c for c in codes if not _COUNTRY.match(c)]
        if bad:
            raise InvalidRequest(
                f"countries must be ISO 3166 two-letter codes, not {bad[0]!r}", param="eligible_countries"
            )
        values["eligible_countries"] = sorted(set(codes))
    for sector in values.get("eligible_sectors") or []:
        if sector not in Sector.__members__:
            raise InvalidRequest(f"unknown sector {sector!r}", param="eligible_sectors")
    if values.get("kind") is not None and values["kind"] not in CallKind.__members__:
        raise InvalidRequest("kind must be one of " + ", ".join(CallKind.__members__), param="kind")
    if values.get("review_mode") is not None and values["review_mode"] not in ReviewMode.__members__:
        raise InvalidRequest("review_mode must be one of " + ", ".join(ReviewMode.__members__), param="review_mode")
    return values


def _consistent(call: AccessCall) -> None:
    if call.min_gpu_hours is not None and call.max_gpu_hours is not None and call.min_gpu_hours > call.max_gpu_hours:
        raise InvalidRequest("min_gpu_hours must not be more than max_gpu_hours", param="min_gpu_hours")
    if call.closes_at is not None and call.closes_at <= call.opens_at:
        raise InvalidRequest("a call must close after it opens", param="closes_at")


def _operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise Forbidden("Only operators create and change calls.")


def create_call(
    *, session: Session, actor: Actor, data: CallIn, partitions: Collection[str] | None = None
) -> AccessCall:
    """``partitions``: the site's (compute's ``partitions()``); GPU-hours on others are refused."""
    _operator(actor)
    values = _check(data.model_dump(), partitions)
    values["opens_at"] = values["opens_at"] or utcnow()
    if session.scalar(select(AccessCall.id).where(AccessCall.slug == data.slug)):
        raise Conflict(f"a call with slug {data.slug!r} exists already", param="slug")
    call = AccessCall(**values)
    _consistent(call)
    session.add(call)
    session.flush()
    return call


def update_call(
    *, session: Session, actor: Actor, ref: str, data: CallPatch, partitions: Collection[str] | None = None
) -> AccessCall:
    """Change the fields given in ``data`` (null clears closes_at, the limits and eligible_countries)."""
    _operator(actor)
    call = get_call(session=session, ref=ref)
    values = _check(data.model_dump(exclude_unset=True), partitions)
    for required in ("name", "kind", "description", "opens_at", "cutoffs", "offered_gpu_hours", "offered_tokens",
                     "durations_months", "eligible_sectors", "review_mode", "target_days_to_access", "is_active"):
        if required in values and values[required] is None:
            raise InvalidRequest(f"{required} cannot be null", param=required)
    for key, value in values.items():
        setattr(call, key, value)
    _consistent(call)
    session.flush()
    return call


def get_call(*, session: Session, ref: str) -> AccessCall:
    call = None
    if _REF.match(ref or ""):
        call = session.scalar(select(AccessCall).where(or_(AccessCall.id == ref, AccessCall.slug == ref)))
    if call is None:
        raise NotFound(f"no call {ref!r}", param="call")
    return call


def list_calls(*, session: Session, actor: Actor | None, include_inactive: bool = False) -> list[AccessCall]:
    """Calls by opening date; inactive ones only for operators who ask for them."""
    query = select(AccessCall).order_by(AccessCall.opens_at, AccessCall.slug)
    if not (include_inactive and actor is not None and actor.is_operator):
        query = query.where(AccessCall.is_active.is_(True))
    return list(session.scalars(query))
