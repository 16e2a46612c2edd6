"""Deployments against a real database; the scheduler is the compute tests' fake of our own Scheduler
protocol, the replicas' checks a fake of our own Prober."""

from __future__ import annotations

from tests.integration.compute.conftest import compute, grant, scheduler  # noqa: F401
from tests.support.services import api, engine, factory, migrated_url, portal, session, world  # noqa: F401
