"""The portal's pages on the front door: home and project pages, applying, the review queue, the
operator console, a project's API keys, usage charts, and compute jobs (list, submit, follow, cancel).
``install`` adds their routes and serves the small static files they use (/static: a stylesheet, the
draft autosave script, the script that follows a running job).

Each module is thin: it reads the form or query, calls the services of calls, applications,
allocations, identity, metering and compute, and renders templates/<concept>/.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from jaif.web.pages import (
    apply,
    apply_steps,
    home,
    job_form,
    jobs,
    keys,
    operator_applications,
    operator_calls,
    operator_directory,
    organisation,
    review,
    usage,
)

STATIC = Path(__file__).resolve().parent.parent / "static"
# job_form before jobs: /jobs/new before /jobs/{job_id}
MODULES = (home, apply, apply_steps, review, operator_calls, operator_applications, operator_directory, organisation,
           keys, usage, job_form, jobs)


def install(app: FastAPI) -> None:
    for module in MODULES:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
