"""The ``jaif`` command line. Each command validates its input, calls one service and prints."""

from __future__ import annotations

import sys

from jaif.cli import (
    access,
    allocations,
    calls,
    compute,
    deployments,
    identity,
    inference,
    metering,
    services,
    system,
)
from jaif.cli.common import app, err
from jaif.errors import JaifError

for module in (system, access, identity, inference, metering, services, calls, allocations, compute, deployments):
    module.register(app)


def main() -> None:
    try:
        app()
    except JaifError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        sys.exit(1)
