"""The API documentation pages, /docs (Swagger UI) and /redoc (ReDoc), served entirely by jaif.

FastAPI's own pages load their scripts and styles from a CDN and start Swagger UI with an inline script;
neither works on a machine without internet access or under the portal's Content-Security-Policy
(web/headers.py). The files come from the ``fastapi-offline`` package (a dependency: the swagger-ui and
redoc distribution files, kept current by its maintainers), served under /docs/assets; the pages are
templates/docs/*.html, and Swagger UI is started by /static/swagger-init.js. Nothing is fetched from
elsewhere.

Both pages get a policy that allows what these two libraries need beyond the portal's: inline styles
(Swagger UI and ReDoc set them from script; ReDoc injects <style> elements) and, for ReDoc's search, a
worker made from a blob. Scripts stay limited to jaif's own files.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from jaif.web.headers import CSP
from jaif.web.templating import TEMPLATES

ASSETS_URL = "/docs/assets"
DOCS_CSP = (
    CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
    .replace("img-src 'self' data:", "img-src 'self' data: blob:")
    + "; worker-src 'self' blob:"
)

router = APIRouter(include_in_schema=False)


def assets_dir() -> Path:
    """Where fastapi-offline keeps swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png."""
    return Path(str(files("fastapi_offline") / "static"))


def _page(request: Request, template: str) -> Response:
    app = request.app
    root = request.scope.get("root_path", "")
    response = TEMPLATES.TemplateResponse(
        request, template, {"title": app.title, "openapi_url": root + app.openapi_url, "assets": root + ASSETS_URL}
    )
    response.headers["content-security-policy"] = DOCS_CSP
    return response


@router.get("/docs")
def swagger_ui(request: Request) -> Response:
    return _page(request, "docs/swagger.html")


@router.get("/redoc")
def redoc(request: Request) -> Response:
    return _page(request, "docs/redoc.html")


def install(app: FastAPI) -> None:
    """Mount the pages and their files; create_app makes the app with docs_url=None, redoc_url=None."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
