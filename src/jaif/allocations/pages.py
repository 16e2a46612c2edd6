"""The operator console's allocations: the list by project and status, creating one (a form with a
mistake comes back with the error next to the field and the input kept) and revoking one; and the
allocations as CSV: a user's projects' (``/allocations.csv``, linked from the project page) and, for
operators, every project's with the console's filters (``/operator/allocations.csv``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access import directory
from jaif.access.schemas import Actor
from jaif.allocations import service as allocations
from jaif.allocations.models import Allocation, AllocationStatus
from jaif.compute.deps import site_partitions
from jaif.db.base import utcnow
from jaif.errors import JaifError
from jaif.identity.deps import PageOperator, PageUser
from jaif.notify.deps import MailerDep
from jaif.web.deps import DB
from jaif.web.display import render, sentence
from jaif.web.download import csv_response
from jaif.web.forms import FormFields, attempt
from jaif.web.paging import Pager
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)
STATUSES = [(s.value, s.value) for s in AllocationStatus]
CSV_COLUMNS = ("project", "resource", "partition", "amount", "used", "remaining", "unit", "starts_at", "ends_at",
               "status")
GPU_HOUR_DIGITS = 2  # GPU-hours in the CSV to 2 decimals (36 s), as on the pages


def _amount(value: float, tokens: bool) -> int | float:
    return int(round(value)) if tokens else round(value, GPU_HOUR_DIGITS)


def _csv_rows(found: list[Allocation]) -> list[tuple]:
    rows = []
    for a in map(allocations.out, found):
        tokens = a.resource == "tokens"
        rows.append((a.project_name, a.resource, a.partition or "", _amount(a.amount, tokens), _amount(a.used, tokens),
                     _amount(a.remaining, tokens), "tokens" if tokens else "GPU-hours",
                     a.starts_at.date().isoformat(), a.ends_at.date().isoformat(), a.status))
    return rows


@router.get("/allocations.csv")
def my_allocations_csv(session: DB, actor: PageUser, project: Annotated[str, Query(max_length=32)] = "") -> Response:
    """The allocations of the user's projects, or of ``project`` (one the user may see, else 404)."""
    if project:
        chosen = [directory.get_project(session=session, actor=actor, project_id=project, members=False)]
    else:
        chosen = directory.member_projects(session=session, actor=actor)
    found = allocations.allocations_of_projects(session=session, actor=actor, project_ids=[p.id for p in chosen])
    rows = _csv_rows([a for p in chosen for a in found[p.id]])
    name = chosen[0].name if project else "my-projects"
    return csv_response(f"allocations-{name}-{utcnow():%Y-%m-%d}.csv", CSV_COLUMNS, rows)


@router.get("/operator/allocations.csv")
def operator_allocations_csv(
    session: DB, actor: PageOperator,
    project: Annotated[str, Query(max_length=200)] = "", status: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """Every project's allocations (operators), filtered as the console's list."""
    status = status if status in AllocationStatus.__members__ else ""
    found = allocations.list_allocations(session=session, actor=actor, project_name=project.strip() or None,
                                         status=status or None)
    return csv_response(f"allocations-{utcnow():%Y-%m-%d}.csv", CSV_COLUMNS, _csv_rows(found))


def _allocations_page(request: Request, session: Session, actor: Actor, *, project: str = "", status: str = "",
                      page: str = "1", values=None, errors=None, status_code: int = 200) -> Response:
    filters = {"project_name": project.strip() or None, "status": status or None}
    partitions = site_partitions(request)
    pager = Pager.of(request, page=page, total=allocations.count_allocations(session=session, actor=actor,
                                                                             **filters))
    found = allocations.list_allocations(session=session, actor=actor, **filters, limit=pager.size,
                                         offset=pager.offset)
    return render(
        request, "allocations/list.html", status_code, section="operator",
        allocations=[allocations.out(a) for a in found], pager=pager,
        chosen={"project": project, "status": status}, statuses=STATUSES, partitions=partitions,
        values=values or {"resource": "gpu_hours", "partition": next(iter(partitions), ""), "days": "60"},
        errors=errors or {},
    )


@router.get("/operator/allocations")
def allocation_list(
    request: Request, session: DB, actor: PageOperator,
    project: Annotated[str, Query(max_length=200)] = "", status: Annotated[str, Query(max_length=20)] = "",
    page: Annotated[str, Query(max_length=12)] = "1",
) -> Response:
    status = status if status in AllocationStatus.__members__ else ""
    try:
        return _allocations_page(request, session, actor, project=project, status=status, page=page)
    except JaifError as exc:  # no such project: say so beside the filter
        if exc.status != 404:
            raise
        return _allocations_page(request, session, actor, status=status, errors={"project": sentence(exc.message)},
                                 status_code=404)


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("_", "").strip())
    except ValueError:
        return None


def _allocation_errors(form: dict[str, str]) -> dict[str, str]:
    errors = {}
    if not form.get("project_name", "").strip():
        errors["project_name"] = "Name the project."
    if form.get("resource") not in ("gpu_hours", "tokens"):
        errors["resource"] = "Choose GPU-hours or tokens."
    amount = _number(form.get("amount", ""))
    if amount is None or not 0 < amount <= 1e15:
        errors["amount"] = "Enter an amount more than 0."
    days = _number(form.get("days", ""))
    if days is None or not 0 < days <= 36500:
        errors["days"] = "Enter the number of days the allocation lasts (1 to 36500)."
    return errors


@router.post("/operator/allocations")
def create_allocation(request: Request, session: DB, actor: PageOperator, mailer: MailerDep,
                      form: FormFields) -> Response:
    errors = _allocation_errors(form)
    if not errors:
        resource = form["resource"]
        try:
            made = attempt(session, lambda: allocations.create_allocation(
                session=session, actor=actor, mailer=mailer, project_name=form["project_name"].strip(),
                resource=resource, amount=_number(form["amount"]) or 0,
                partition=form.get("partition", "").strip() if resource == "gpu_hours" else None,
                days=_number(form["days"]), partitions=site_partitions(request)))
        except JaifError as exc:
            field = {"project": "project_name"}.get(exc.param or "", exc.param or "amount")
            errors = {field: sentence(exc.message)}
        else:
            flash(request, f"Allocated to {made.project.name}: {allocations.describe(made)}.")
            return RedirectResponse("/operator/allocations", status_code=303)
    return _allocations_page(request, session, actor, values=form, errors=errors, status_code=400)


@router.post("/operator/allocations/{allocation_id}/revoke")
def revoke_allocation(request: Request, session: DB, actor: PageOperator, allocation_id: str) -> Response:
    try:
        revoked = attempt(session, lambda: allocations.revoke_allocation(session=session, actor=actor,
                                                                         allocation_id=allocation_id))
    except JaifError as exc:
        if exc.status == 404:
            raise
        flash(request, sentence(exc.message), "error")
    else:
        flash(request, f"The allocation of {revoked.project.name} is revoked.")
    return RedirectResponse("/operator/allocations", status_code=303)
