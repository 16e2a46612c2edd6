"""The address users, jobs and e-mail links reach this install at, the same in every process.

``served_url`` is the configured public URL (``identity.public_url``) when there is one. Otherwise it
is the address `jaif serve` last listened on, which the server records in ``data_dir/served_url`` when
it starts (``record``), so that the command line and the jobs it submits use the port the server was
really given (``jaif serve --port``), not the default in their own settings. With neither, it is
``web.host``:``web.port``. A wildcard bind (0.0.0.0, ::) is named by this machine's host name.

Never the Host header of a request, which the client chooses.
"""

from __future__ import annotations

import os
import socket

from jaif.config import Settings

FILE = "served_url"


def _address(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def served_url(settings: Settings) -> str:
    """Where this install is reached, without a trailing slash (see the module's docstring)."""
    if settings.identity.public_url:
        return settings.identity.public_url.rstrip("/")
    try:
        recorded = (settings.data_dir / FILE).read_text().strip()
    except OSError:
        recorded = ""
    if recorded.startswith(("http://", "https://")):
        return recorded
    return _address(settings.web.host, settings.web.port)


def record(settings: Settings, *, host: str, port: int) -> None:
    """Called by `jaif serve` as it starts: the address it listens on, for other processes to find."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / FILE
    partial = path.with_name(f".{FILE}.{os.getpid()}")
    partial.write_text(_address(host, port) + "\n")
    partial.replace(path)  # whole or not at all, for a reader at the same moment
