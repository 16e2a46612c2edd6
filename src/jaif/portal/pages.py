"""The portal's front page (``/``) and a project's page (``/projects/{id}``), where its PI asks for a
renewal or a top-up (``POST /projects/{id}/requests``: a draft application of that kind, then its form).

``/``: for visitors, what this gateway serves and how to call it; for a signed-in user, their home:
projects with their allocations as bars of used against amount, applications in flight, reviews waiting.
A project that is not the user's does not exist for them (404), operators see every project's page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, RedirectResponse, Response

from jaif.access import directory
from jaif.access.schemas import Actor
from jaif.allocations import service as allocations
from jaif.allocations.schemas import AllocationOut
from jaif.applications import reviews
from jaif.applications import service as applications
from jaif.calls import service as calls
from jaif.errors import JaifError
from jaif.identity import team
from jaif.identity.deps import OptionalActor, PageUser
from jaif.inference.gateway import model_status
from jaif.web.deps import DB
from jaif.web.display import IN_FLIGHT, percent, render, sentence
from jaif.web.forms import FormFields, attempt
from jaif.web.session import flash

router = APIRouter(include_in_schema=False)


@dataclass
class Bar:
    """One allocation as a bar: what is used of the amount, in its unit."""

    label: str
    unit: str
    used: float
    amount: float
    status: str
    allocation: AllocationOut

    @property
    def percent(self) -> int:
        return percent(self.used, self.amount)


@dataclass
class ProjectCard:
    id: str
    name: str
    role: str
    organisation: str
    bars: list[Bar] = field(default_factory=list)
    ended: int = 0


def bar_of(allocation: AllocationOut) -> Bar:
    if allocation.resource == "tokens":
        return Bar("Inference tokens", "tokens", allocation.used, allocation.amount, allocation.status, allocation)
    label = f"GPU-hours on {allocation.partition}"
    return Bar(label, "GPU-hours", allocation.used, allocation.amount, allocation.status, allocation)


def project_allocations(session: Session, actor: Actor, project_id: str) -> list[AllocationOut]:
    found = allocations.list_allocations(session=session, actor=actor, project_id=project_id)
    return [allocations.out(a) for a in found]


def _cards(session: Session, actor: Actor) -> list[ProjectCard]:
    """The user's projects and their allocations in a few queries, however many projects there are."""
    mine = directory.my_projects(session=session, actor=actor)
    found = allocations.allocations_of_projects(session=session, actor=actor, project_ids=[p.id for p in mine])
    cards = []
    for project in mine:
        card = ProjectCard(project.id, project.name, project.role, project.organisation)
        for allocation in found[project.id]:
            if allocation.status == "active":
                card.bars.append(bar_of(allocations.out(allocation)))
            else:
                card.ended += 1
        cards.append(card)
    return cards


def dashboard(request: Request, session: Session, actor: Actor) -> Response:
    """The home page of a signed-in user."""
    if actor.user_id is None:  # a token of the command line has no home; show the projects it may see
        cards = []
    else:
        cards = _cards(session, actor)
    mine = applications.application_rows(session=session, actor=actor, mine=True, limit=50)
    pending_reviews = reviews.count_reviews(session=session, actor=actor, only_open=True) if actor.is_reviewer else 0
    return render(
        request, "portal/dashboard.html", section="home", actor=actor, projects=cards,
        in_flight=[a for a in mine if a.state in IN_FLIGHT], pending_reviews=pending_reviews,
    )


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: DB, actor: OptionalActor) -> Response:
    if actor is not None:
        return dashboard(request, session, actor)
    registry = request.app.state.runtime.registry
    aliases: dict[str, list[str]] = {}
    for alias, name in registry.aliases.items():
        aliases.setdefault(name, []).append(alias)
    models = [
        {
            "name": m.name,
            "kind": m.kind,
            "context_length": m.context_length,
            "aliases": sorted(aliases.get(m.name, [])),
            "replicas": len(m.replicas.replicas),
            "status": model_status(m),
        }
        for m in sorted(registry.models.values(), key=lambda m: m.name)
    ]
    return render(request, "portal/home.html", models=models, base_url=str(request.base_url))


def _project_page(request: Request, session: Session, actor: Actor, project_id: str, *,
                  values: dict | None = None, errors: dict | None = None, status_code: int = 200) -> Response:
    team.require_member(session=session, actor=actor, project_id=project_id)  # 404 for others
    project = directory.project_out(directory.get_project(session=session, actor=actor, project_id=project_id))
    found = project_allocations(session, actor, project_id)
    is_pi = team.role_in(session=session, project_id=project_id, user_id=actor.user_id) == "pi"
    open_calls = [(c.slug, c.name) for c in calls.list_calls(session=session, actor=actor)] if is_pi else []
    return render(
        request, "portal/project.html", status_code, section="home", actor=actor, project=project,
        bars=[bar_of(a) for a in found if a.status == "active"],
        ended=[a for a in found if a.status != "active"],
        manager=team.can_manage(session=session, actor=actor, project_id=project_id),
        is_pi=is_pi, open_calls=open_calls, values=values or {}, errors=errors or {},
    )


@router.get("/projects/{project_id}")
def project_page(request: Request, session: DB, actor: PageUser, project_id: str) -> Response:
    return _project_page(request, session, actor, project_id)


@router.post("/projects/{project_id}/requests")
def request_more(request: Request, session: DB, actor: PageUser, project_id: str, form: FormFields) -> Response:
    """*Ask for a renewal* or *Ask for a top-up* (the button's ``kind``) in the chosen call: a draft
    application of that kind for this project, then its form."""
    kind, call = form.get("kind", ""), form.get("call", "").strip()
    try:
        draft = attempt(session, lambda: applications.request_more(session=session, actor=actor,
                                                                   project_id=project_id, kind=kind, call=call))
    except JaifError as exc:
        if exc.param == "project_id" or exc.status == 403:
            raise
        field = "kind" if exc.param == "kind" else "call"
        status = 400 if exc.status == 404 else exc.status  # a call that is not there: a mistake in the form
        return _project_page(request, session, actor, project_id, values={"call": call},
                             errors={field: sentence(exc.message)}, status_code=status)
    what = "renewal" if kind == "renewal" else "top-up"
    flash(request, f"Your {what} request is a draft, saved: fill it in and submit it.", "info")
    return RedirectResponse(f"/applications/{draft.id}/edit/proposal", status_code=303)
