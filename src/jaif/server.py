"""Run uvicorn: one process, or several workers that each build their own app (and leases)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from typing import Any

import uvicorn

from jaif import served
from jaif.app import asgi_app
from jaif.config import Settings
from jaif.db.migrate import check_current
from jaif.secret_key import secret_key


def run(settings: Settings, *, host: str | None, port: int | None, workers: int | None, metered: bool = True) -> None:
    """``metered``: False only for bench/gateway.py's baseline (bench/unmetered.py; metering/meter.py)."""
    check_current(settings.database_url)
    host = host or settings.web.host
    port = port or settings.web.port
    workers = workers or settings.web.workers
    # Links in e-mails point here when no public URL is set: the address served, never a Host header.
    settings = settings.model_copy(update={"web": settings.web.model_copy(update={"host": host, "port": port})})
    served.record(settings, host=host, port=port)  # for the command line and the jobs it submits
    secret_key(settings)  # generated now, before any worker starts, when neither configured nor kept yet
    options = uvicorn_options(settings, host=host, port=port)
    print(f"jaif serving at http://{host}:{port} (API at /v1, metrics at /metrics)", flush=True)
    if workers > 1:
        # Each worker reads the same JAIF_* environment, so it builds the same Settings. Their
        # Prometheus metrics meet in files in one folder (prometheus_client's multiprocess mode,
        # which it switches on from PROMETHEUS_MULTIPROC_DIR), so any worker's /metrics shows all.
        metrics_dir = tempfile.mkdtemp(prefix="jaif-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ["JAIF_WEB__METRICS_DIR"] = metrics_dir
        os.environ["JAIF_WEB__HOST"], os.environ["JAIF_WEB__PORT"] = host, str(port)
        try:
            factory = "jaif.app:app_from_env" if metered else "jaif.app:unmetered_app_from_env"
            uvicorn.run(factory, factory=True, workers=workers, **options)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    else:
        # uvicorn drains on SIGTERM (requests and streams under way finish, the lifespan flushes usage and
        # gives leases back), then raises the signal again so the process ends the way it was asked to: -15.
        # A drain that finished is a clean exit, as with --workers N, whose supervisor exits 0: this handler,
        # which uvicorn puts back before raising, makes it exit 0.
        signal.signal(signal.SIGTERM, _exit_after_drain)
        uvicorn.run(asgi_app(settings, metered=metered), **options)


def uvicorn_options(settings: Settings, *, host: str, port: int) -> dict[str, Any]:
    """How `jaif serve` runs uvicorn (public options only), with one worker or several."""
    return dict(
        host=host,
        port=port,
        log_level=settings.web.log_level,
        access_log=settings.web.log_level == "debug",
        timeout_graceful_shutdown=30,
        loop="uvloop",
        http="httptools",
        # Said, not guessed from the app's __call__.
        interface="asgi3",
        # jaif is reached directly or through a proxy the operator configures; parsing forwarded
        # headers on every request is not worth its cost here.
        proxy_headers=False,
        # No "server: uvicorn" on every answer: it tells a scanner what to try, and costs each answer a header.
        server_header=False,
    )


def _exit_after_drain(signum: int, frame: object) -> None:
    raise SystemExit(0)
