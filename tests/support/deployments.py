"""Reading deployments back in the end-to-end tests while they wait for a replica: in-process, through the
service `jaif deployment list --json` calls, with the same JSON. A `jaif` process per poll (every half
second, for minutes) cost a core of the 2-core machine the replicas themselves are loading on; the
commands that change deployments are still run as users run them."""

from __future__ import annotations

import jaif.db.models  # noqa: F401  (every mapper known before the first query)
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.deployments import service


def listed(database_url: str) -> list[dict]:
    """The deployments and their replicas, as `jaif deployment list --json` prints them."""
    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            items = [service.deployment_out(session, d) for d in service.list_deployments(session=session)]
            return [d.model_dump(mode="json") for d in items]
    finally:
        engine.dispose()
