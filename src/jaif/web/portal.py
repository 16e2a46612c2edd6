"""The portal's front page: a signed-in user's home (web/pages/home.py); for visitors, what this gateway
serves and how to call it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from jaif.web.deps import DB, OptionalActor
from jaif.web.pages.home import dashboard
from jaif.web.templating import TEMPLATES

router = APIRouter(include_in_schema=False)


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
        }
        for m in sorted(registry.models.values(), key=lambda m: m.name)
    ]
    return TEMPLATES.TemplateResponse(
        request, "portal/home.html", {"models": models, "base_url": str(request.base_url)}
    )
