"""create_app(settings): routers, error handlers, lifespan. No work at import time."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from jaif import __version__, routes
from jaif.compute.backend import make_compute
from jaif.compute.reports import PerCallCache
from jaif.config import Settings
from jaif.files.upload import PAGE_UPLOAD_PATH as FILES_UPLOAD_PATH
from jaif.identity.oidc import SsoProviders
from jaif.inference import token_endpoints
from jaif.inference.openapi import add_hot_operations
from jaif.responses import openapi as responses_openapi
from jaif.runtime import Runtime
from jaif.web import errors, middleware
from jaif.web.edge import EdgeApp
from jaif.web.headers import SecurityHeaders
from jaif.web.limits import BodyLimit

UPLOAD_FORM_BYTES = 64 * 1024  # what a multipart upload carries beside its file: boundaries, headers, purpose


def tune_gc() -> None:
    """The cyclic garbage collector, tuned for a server whose requests make many short-lived objects.

    Everything loaded by now (modules, the ORM's mappers, models' metadata) lives as long as the
    process: frozen, out of the collector's sight, so a full collection walks only what requests made
    since; full collections over the start-up heap cost the gateway ~15 µs a request. And a young
    collection every 20,000 objects instead of 700: each walks the objects of the requests in flight,
    which were collected every few dozen requests for ~6 µs a request (bench/gateway.py). Reference
    counting frees almost everything anyway; what waits for the collector is bounded by the threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def create_app(settings: Settings | None = None, *, server: bool = False, metered: bool = True) -> EdgeApp:
    """``server``: the app is the process's one server (`jaif serve`), which may tune the process (tune_gc).
    ``metered``: False only for bench/gateway.py's baseline (metering/meter.py); no setting reaches it."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, metered=metered)
        await runtime.start()
        if server:
            tune_gc()
        app.state.runtime = runtime
        app.state.gateway = runtime.gateway
        app.state.dependencies = runtime.health  # outages met by routes (web/errors.py)
        routes.serve_hot_routes(app, runtime.gateway)
        try:
            yield
        finally:
            routes.serve_hot_routes(app, None)
            await runtime.stop()

    app = EdgeApp(
        title="jaif",
        version=__version__,
        summary="AI Factory platform: OpenAI-compatible inference gateway",
        lifespan=lifespan,
        # /docs and /redoc are jaif's own pages with files served by jaif (web/docs.py), not a CDN's.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # jaif exports Prometheus metrics (ops/metrics.py) and configures no OpenTelemetry provider.
        # FastAPI's own instrumentation asks the global providers on every request whether one was set
        # since (several µs a request, bench/gateway.py): off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.compute = make_compute(settings)  # the scheduler: objects only, nothing started
    app.state.call_energy = PerCallCache(ttl_s=60)  # the console's energy per call, at most a minute old
    app.state.sso = SsoProviders(settings.identity.oidc_providers)  # the single sign-on clients
    errors.install(app)
    # Every router and page, the inference API (/v1) first (routes.py).
    routes.mount(app)
    # Sessions, CSRF, trusted hosts, the sign-in redirect (web/middleware.py).
    middleware.install(app, settings)
    # The edge (web/edge.py), outside FastAPI's own error, telemetry and body-size layers, outermost last.
    # An upload to /v1/files, or the portal's upload form, may be as large as a file (files.max_bytes) and its
    # form's few fields.
    uploads = {path: settings.files.max_bytes + UPLOAD_FORM_BYTES for path in ("/v1/files", FILES_UPLOAD_PATH)}
    app.add_edge_middleware(BodyLimit, max_bytes=settings.inference.max_body_bytes, larger=uploads)
    # Every answer of the app, refusals of the body limit and CSRF check and FastAPI's own 500 included.
    app.add_edge_middleware(SecurityHeaders)
    # The app's front, asked before all of that: POST /v1/chat/completions, /v1/completions, /v1/embeddings,
    # /v1/rerank, /v1/responses, /tokenize, ...: plain ASGI endpoints ahead of everything else (routes.py),
    # which apply the body limit and security headers themselves (inference/endpoints.py).
    routes.mount_hot_routes(app, max_body_bytes=settings.inference.max_body_bytes)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            app.openapi_schema = add_hot_operations(schema, responses_openapi.OPERATIONS + token_endpoints.OPERATIONS)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def asgi_app(settings: Settings, *, metered: bool = True) -> EdgeApp:
    """What `jaif serve` runs: create_app's app, as the process's one server."""
    return create_app(settings, server=True, metered=metered)


def app_from_env() -> EdgeApp:
    """Factory for the server's worker processes (`jaif serve`, server.py): settings from the environment."""
    return asgi_app(Settings())


def unmetered_app_from_env() -> EdgeApp:
    """bench/gateway.py's baseline only (through bench/unmetered.py): the same server without metering and
    quotas, to measure what they cost. `jaif serve` never runs this."""
    return asgi_app(Settings(), metered=False)
