"""The operator console's front page (what needs doing, time to access per call, and the GPU-hours,
energy and CO2 of each call's projects) and its calls: list, create, change (closing one is unticking
*open for applications*).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from jaif.access.schemas import Actor
from jaif.applications import time_to_access
from jaif.calls import forms
from jaif.calls import service as calls
from jaif.calls.schemas import CallIn
from jaif.compute.deps import site_partitions
from jaif.errors import InvalidRequest, JaifError
from jaif.identity.deps import PageOperator
from jaif.metering.charts import category_chart
from jaif.web.deps import DB
from jaif.web.display import render, sentence
from jaif.web.forms import FormFields, attempt
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)


ENERGY_PERIODS = {"30": 30, "90": 90, "365": 365, "all": None}  # days of the console's energy table


def _energy(request: Request, session: Session, actor: Actor, every: list, period: str) -> dict:
    """Each call's projects' jobs that ended in the period: the table's rows and two charts (kWh, kg CO2).
    The sums are at most a minute old (compute/reports.py, PerCallCache: the page says so)."""
    days = ENERGY_PERIODS[period]
    used = request.app.state.call_energy.get(session=session, actor=actor, days=days)
    rows = [(c, used[c.id]) for c in every if c.id in used]
    rows.sort(key=lambda r: -r[1].energy_kwh)
    if not rows:
        return {"rows": [], "kwh_chart": None, "co2_chart": None}
    title = f" per call, {'the last ' + str(days) + ' days' if days else 'since the start'}"
    return {
        "rows": rows,
        "kwh_chart": category_chart([(c.name, u.energy_kwh) for c, u in rows], unit="kWh",
                                    title="Energy" + title, chart_id="energy-per-call"),
        "co2_chart": category_chart([(c.name, u.co2_kg) for c, u in rows], unit="kg CO2",
                                    title="CO2" + title, chart_id="co2-per-call"),
    }


@router.get("/operator")
def console(request: Request, session: DB, actor: PageOperator,
            energy: Annotated[str, Query(max_length=5)] = "365") -> Response:
    if energy not in ENERGY_PERIODS:  # never a silent default for what the operator asked
        raise InvalidRequest(f"energy must be one of {', '.join(ENERGY_PERIODS)}, not {energy!r}.", param="energy")
    every = calls.list_calls(session=session, actor=actor, include_inactive=True)
    speed = [(calls.out(c), time_to_access.for_call(session, c)) for c in every]
    return render(request, "calls/console.html", section="operator", speed=speed, period=energy,
                  periods=ENERGY_PERIODS, energy=_energy(request, session, actor, every, energy),
                  grid=request.app.state.settings.compute.grid_intensity_g_per_kwh)


@router.get("/operator/calls")
def call_list(request: Request, session: DB, actor: PageOperator) -> Response:
    every = [calls.out(c) for c in calls.list_calls(session=session, actor=actor, include_inactive=True)]
    return render(request, "calls/list.html", section="operator", calls=every)


def _form_page(request: Request, *, call_slug: str | None, values: dict, errors: dict | None = None,
               status_code: int = 200) -> Response:
    return render(request, "calls/form.html", status_code, section="operator", call_slug=call_slug,
                  values=values, errors=errors or {}, kinds=forms.KINDS, modes=forms.MODES,
                  partitions=site_partitions(request))


@router.get("/operator/calls/new")
def new_call(request: Request, actor: PageOperator) -> Response:
    return _form_page(request, call_slug=None, values=forms.blank())


@router.post("/operator/calls/new")
def create_call(request: Request, session: DB, actor: PageOperator, form: FormFields) -> Response:
    return _save(request, session, actor, None, form)


@router.get("/operator/calls/{slug}")
def edit_call(request: Request, session: DB, actor: PageOperator, slug: str) -> Response:
    call = calls.out(calls.get_call(session=session, ref=slug))
    return _form_page(request, call_slug=call.slug, values=forms.values_of(call))


@router.post("/operator/calls/{slug}")
def change_call(request: Request, session: DB, actor: PageOperator, slug: str, form: FormFields) -> Response:
    calls.get_call(session=session, ref=slug)  # 404 first
    return _save(request, session, actor, slug, form)


def _save(request: Request, session: Session, actor: Actor, slug: str | None, form: dict[str, str]) -> Response:
    data, errors = forms.parse(form, new=slug is None)
    partitions = site_partitions(request)
    if data is not None:
        try:
            if isinstance(data, CallIn):  # a new call (forms.parse gives a CallPatch for a change)
                new = data
                saved = attempt(session, lambda: calls.create_call(session=session, actor=actor, data=new,
                                                                    partitions=partitions))
            else:
                patch, ref = data, slug or ""
                saved = attempt(session, lambda: calls.update_call(session=session, actor=actor, ref=ref, data=patch,
                                                                    partitions=partitions))
        except JaifError as exc:
            if exc.status == 404:
                raise
            errors = {forms.form_field(exc.param or "name"): sentence(exc.message)}
        else:
            flash(request, f"Call {saved.name} is saved.")
            return RedirectResponse("/operator/calls", status_code=303)
    values = {**form, **{k: True for k in form if k.startswith("sector_") or k == "is_active"}}
    if "is_active" not in form:
        values["is_active"] = False
    return _form_page(request, call_slug=slug, values=values, errors=errors, status_code=400)
