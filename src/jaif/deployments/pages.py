"""The operator console's deployments page (/operator/deployments): each deployment's status, its
replicas (state, scheduler job, node and port, requests in flight in every gateway, tokens per second
over the last minute, the scheduler's reason while queued) and the controller's latest decisions.
Read-only: deployments are created, scaled and deleted with `jaif deployment` or /api/v1/deployments."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from jaif.deployments import service
from jaif.identity.deps import PageOperator
from jaif.web.deps import DB, settings
from jaif.web.display import render

router = APIRouter(include_in_schema=False)


@router.get("/operator/deployments")
def deployments_page(request: Request, session: DB, actor: PageOperator) -> Response:
    fresh_s = settings(request).deployments.load_fresh_s
    return render(request, "deployments/list.html", section="operator",
                  items=service.overview(session, fresh_s=fresh_s))
