"""What a running server does for compute every ``slurm.sync_interval_s``: keep job states in step with
the scheduler, reconcile Slurm's accounts with the allocations, import and charge finished jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from jaif.compute import accounting, service, sync
from jaif.compute.backend import Compute

log = logging.getLogger(__name__)


def sync_accounts(session_factory: Callable[[], AbstractContextManager[Session]], compute: Compute) -> None:
    """Reconcile Slurm's accounts with the allocations now (after an allocation changed)."""
    if compute.accounts is None:
        return
    with session_factory() as session:
        done = sync.sync(session=session, compute=compute)
    for error in done.errors + [f"still different: {r}" for r in done.remaining]:
        log.warning("slurm sync: %s", error)
    if done.plan.changes:
        log.info("slurm sync after an allocation change: %d changes", len(done.plan.changes))


def tick(session_factory: Callable[[], AbstractContextManager[Session]], compute: Compute) -> None:
    with session_factory() as session:
        service.refresh_jobs(session=session, compute=compute)
    result = accounting.import_accounting(session_factory=session_factory, compute=compute)
    if result.imported:
        log.info("accounting: %d jobs imported, %.3f GPU-hours charged", result.imported, result.gpu_hours)
    if compute.accounts is not None:
        with session_factory() as session:
            done = sync.sync(session=session, compute=compute)
        for error in done.errors + [f"still different: {r}" for r in done.remaining]:
            log.warning("slurm sync: %s", error)
        if done.plan.changes:
            log.info("slurm sync: %d changes", len(done.plan.changes))
