"""Run granian (ASGI, uvloop): one worker process, or several that each build their own app (and leases).

granian's HTTP/1.1 layer is Rust: a response's head and body, and the events of a stream that are ready
together, leave in one write, with no per-request Python in the server (docs/gateway.md, the server,
with figures against uvicorn from bench/gateway.py --baseline). Each worker process builds the app with
``jaif.app:app_from_env`` from the same JAIF_* environment, so every worker has the same Settings; the
address served is put there too. On SIGTERM or SIGINT granian stops accepting, the requests under way
finish (up to 30 s), and each worker's lifespan shuts its Runtime down: usage flushed, leases given back.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops
from granian.log import LogLevels

from jaif.config import Settings
from jaif.db.migrate import check_current
from jaif.secret_key import secret_key

GRACEFUL_SHUTDOWN_S = 30


def run(settings: Settings, *, host: str | None, port: int | None, workers: int | None) -> None:
    check_current(settings.database_url)
    host = host or settings.web.host
    port = port or settings.web.port
    workers = workers or settings.web.workers
    secret_key(settings)  # generated now, before any worker starts, when neither configured nor kept yet
    # Links in e-mails point here when no public URL is set: the address served, never a Host header.
    os.environ["JAIF_WEB__HOST"], os.environ["JAIF_WEB__PORT"] = host, str(port)
    metrics_dir = None
    if workers > 1:
        # The workers' Prometheus metrics meet in files in one folder (prometheus_client's multiprocess
        # mode, which it switches on from PROMETHEUS_MULTIPROC_DIR), so any worker's /metrics shows all.
        metrics_dir = tempfile.mkdtemp(prefix="jaif-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ["JAIF_WEB__METRICS_DIR"] = metrics_dir
    server = Granian(
        "jaif.app:app_from_env",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,  # with the lifespan protocol: each worker starts and stops its Runtime
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        log_level=LogLevels(settings.web.log_level),
        log_access=settings.web.log_level == "debug",
        workers_kill_timeout=GRACEFUL_SHUTDOWN_S,
        # jaif is reached directly or through a proxy the operator configures; forwarded headers are not
        # parsed (granian does not unless told to).
    )
    print(f"jaif serving at http://{host}:{port} (API at /v1, metrics at /metrics)", flush=True)
    try:
        server.serve()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
