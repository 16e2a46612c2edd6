"""The one place where every router and page module is mounted: create_app calls ``mount``.

Routes are tried in the order they are mounted:

1. the OpenAI-compatible inference API (/v1), first: the hot path; then the rest of /v1 (files, batches,
   the Responses API's stored responses);
2. operations (/healthz, /metrics);
3. each concept's REST API (/api/v1), in the order the OpenAPI document lists them;
4. each concept's portal pages (``<concept>/pages.py``, or the ``router`` of ``<concept>/pages/``), and
   the portal's front and project pages (portal/pages.py);
5. the API docs (/docs, /redoc) and the portal's static files (/static).

A new concept adds its router to API_ROUTERS and its pages to PAGES; nothing else mounts routes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from jaif.access import pages as access_pages
from jaif.access.directory_router import router as directory_api
from jaif.access.router import router as keys_api
from jaif.allocations import pages as allocations_pages
from jaif.allocations.router import router as allocations_api
from jaif.applications import pages as applications_pages
from jaif.applications.router import reviews_router as reviews_api
from jaif.applications.router import router as applications_api
from jaif.batches.router import router as batches_api
from jaif.calls import pages as calls_pages
from jaif.calls.router import router as calls_api
from jaif.catalogue import pages as catalogue_pages
from jaif.catalogue.router import router as catalogue_api
from jaif.chat import pages as chat_pages
from jaif.compute import pages as compute_pages
from jaif.compute.router import router as compute_api
from jaif.deployments import pages as deployments_pages
from jaif.deployments.router import router as deployments_api
from jaif.files import pages as files_pages
from jaif.files.router import router as files_api
from jaif.identity import pages as identity_pages
from jaif.identity.router import router as identity_api
from jaif.inference import endpoints as inference_endpoints
from jaif.inference import token_endpoints
from jaif.inference.gateway import Gateway
from jaif.inference.router import router as inference_router
from jaif.metering import pages as metering_pages
from jaif.notify import pages as notify_pages
from jaif.ops.router import router as ops_router
from jaif.portal import pages as portal_pages
from jaif.responses import endpoint as responses_endpoint
from jaif.responses.router import router as responses_router
from jaif.support import pages as support_pages
from jaif.support.router import router as support_api
from jaif.training import pages as training_pages
from jaif.training.router import router as training_api
from jaif.web import docs as api_docs
from jaif.web.edge import EdgeApp

# The rest of the OpenAI-compatible API (/v1), on the same project API keys: OpenAI's Files and Batch APIs.
# GET/DELETE /v1/responses/{id} and .../input_items; /v1/files; /v1/batches
V1_ROUTERS: tuple[APIRouter, ...] = (responses_router, files_api, batches_api)

STATIC = Path(__file__).resolve().parent / "web" / "static"

# The REST API of each concept (/api/v1): support desk, catalogue, training; the front door's organisations,
# projects, calls, applications, reviews and allocations; compute's jobs, partitions, report and Slurm sync;
# the operators' model deployments;
# identity's /api/v1/me, tokens, project members and invitations; a project's API keys.
API_ROUTERS: tuple[APIRouter, ...] = (
    support_api, catalogue_api, training_api,
    directory_api, calls_api, applications_api, reviews_api, allocations_api,
    compute_api, deployments_api,
    identity_api, keys_api,
)

# The portal's pages (include_in_schema=False): no two modules share a path, so their order is free.
PAGES: tuple[APIRouter, ...] = (
    portal_pages.router,        # /, /projects/{id}
    applications_pages.router,  # /apply, /applications, the application form, /review, /operator/applications
    calls_pages.router,         # /operator (the console's front page), /operator/calls
    allocations_pages.router,   # /operator/allocations
    access_pages.router,        # /operator/organisations, /organisations/{id}/members
    metering_pages.router,      # /usage
    compute_pages.router,       # /jobs, /jobs/new, /projects/{id}/jobs, a job's files
    files_pages.router,         # /projects/{id}/files, /files/upload
    deployments_pages.router,   # /operator/deployments
    identity_pages.router,      # sign-up, sign-in, /account, /invitations, /projects/{id}/team and /keys
    notify_pages.router,        # /operator/outbox
    support_pages.router,       # /support
    catalogue_pages.router,     # /catalogue
    training_pages.router,      # /training
    chat_pages.router,          # /chat, /chat/{id}: the chat in the browser
)


def mount(app: FastAPI) -> None:
    """Mount every route of the app, in the order above."""
    # 1. The inference API first. (Its hot routes: mount_hot_routes below.)
    app.include_router(inference_router)
    for v1 in V1_ROUTERS:
        app.include_router(v1)
    # 2.-4.
    app.include_router(ops_router)
    for api in API_ROUTERS:
        app.include_router(api)
    for pages in PAGES:
        app.include_router(pages)
    # 5.
    api_docs.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def mount_hot_routes(app: EdgeApp, *, max_body_bytes: int) -> None:
    """The inference API's hot operations (POST /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/rerank,
    the Responses API's POST /v1/responses, and /tokenize and /detokenize with and without /v1): plain ASGI
    endpoints (inference/endpoints.py) as the app's front (web/edge.py), ahead of the security headers, the
    body limit, FastAPI's own layers and routing. create_app calls this once."""
    inference_endpoints.mount(app, max_body_bytes=max_body_bytes,
                              extra=[*responses_endpoint.routes(), *token_endpoints.routes()])


def serve_hot_routes(app: FastAPI, gateway: Gateway | None) -> None:
    """The hot operations answer with ``gateway`` (create_app's lifespan: its runtime's, None once stopped)."""
    if isinstance(app, EdgeApp) and isinstance(app.front, inference_endpoints.HotRoutes):
        app.front.serve(gateway)
