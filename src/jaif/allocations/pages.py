"""The operator console's allocations: the list by project and status, creating one (a form with a
mistake comes back with the error next to the field and the input kept) and revoking one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.allocations import service as allocations
from jaif.allocations.models import AllocationStatus
from jaif.compute.deps import site_partitions
from jaif.errors import JaifError
from jaif.identity.deps import PageOperator
from jaif.notify.deps import MailerDep
from jaif.web.deps import DB
from jaif.web.display import render, sentence
from jaif.web.forms import FormFields, attempt
from jaif.web.paging import Pager
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)
STATUSES = [(s.value, s.value) for s in AllocationStatus]


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
