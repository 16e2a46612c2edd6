"""Helpers for end-to-end tests of routing, failover and metrics.

A test module starts one `jaif serve` and gives each test models of its own: it registers them in the
database (the running server re-reads the registry every JAIF_INFERENCE__REGISTRY_REFRESH_S) and waits
until /healthz lists them. The usage ledger is read from the database, so a test can see the replica and
status of every request. The stand-in upstream can be started on a chosen port, to restart a killed one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from subprocess import Popen

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import select

import jaif.db.models  # noqa: F401  (every table, so the ORM can resolve foreign keys across concepts)
from jaif.access import service as access
from jaif.db.base import utcnow
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.identity import pats
from jaif.inference import service as inference
from jaif.metering.models import UsageRecord
from tests.support.procs import started, wait_for

# Health checks, cool-downs and registry refreshes in tenths of a second, so tests see them happen.
FAST_ROUTING = {
    "JAIF_INFERENCE__HEALTH_INTERVAL_S": "0.2",
    "JAIF_INFERENCE__COOLDOWN_S": "0.5",
    "JAIF_INFERENCE__REGISTRY_REFRESH_S": "0.2",
}


@contextmanager
def _session(database_url: str):
    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def create_key(database_url: str, *, project: str, token_quota: int | None = None) -> str:
    """An organisation, a project and an API key of it; returns the key's secret."""
    with _session(database_url) as session:
        org = f"Org of {project}"
        access.create_organisation(session=session, name=org, sector="academia", country="DE")
        access.create_project(session=session, name=project, organisation=org, token_quota=token_quota)
        _key, secret = access.create_api_key(session=session, project_name=project)
    return secret


def operator_token(database_url: str, *, email: str = "operator@example.org") -> str:
    """A personal access token of an operator (with a verified address), for /api/v1."""
    with _session(database_url) as session:
        user, _password = access.create_user(session=session, email=email, role="operator")
        user.email_verified_at = utcnow()
        session.flush()
        _row, secret = pats.create(session=session, user_id=user.id, name="tests")
    return secret


def project_id(database_url: str, name: str) -> str:
    with _session(database_url) as session:
        return access.get_project(session=session, name=name).id


def add_model(database_url: str, name: str, upstreams: list[str], **options) -> None:
    with _session(database_url) as session:
        inference.add_model(session=session, name=name, upstreams=upstreams, **options)


def seed_builtin_models(database_url: str) -> None:
    with _session(database_url) as session:
        inference.seed_builtin_models(session=session)


def healthz(base: str) -> dict:
    response = httpx.get(base + "/healthz", timeout=5)
    response.raise_for_status()
    return response.json()


def wait_served(base: str, name: str, *, replicas: int, timeout: float = 10.0) -> None:
    """Wait until the running server's registry has ``name`` with ``replicas`` replicas."""

    def count() -> int | None:
        model = healthz(base)["models"].get(name)
        return model["replicas"] if model else None

    seen = wait_for(count, lambda n: n == replicas, timeout=timeout)
    assert seen == replicas, f"{name}: the server shows {seen} replicas, expected {replicas}"


def usage_records(database_url: str, *, model: str) -> list[UsageRecord]:
    """The model's usage records, oldest first."""
    with _session(database_url) as session:
        query = select(UsageRecord).where(UsageRecord.model == model).order_by(UsageRecord.created_at)
        return list(session.scalars(query))


def records_after(database_url: str, *, model: str, count: int, timeout: float = 15.0) -> list[UsageRecord]:
    """The model's usage records once the ledger holds ``count`` of them (the server flushes in batches)."""
    rows = wait_for(lambda: usage_records(database_url, model=model), lambda r: len(r) >= count, timeout=timeout)
    assert len(rows) == count, f"{model}: {len(rows)} usage records, expected {count}"
    return rows


def scrape(base: str, *, token: str | None = None) -> list[Sample]:
    """Every sample of GET /metrics, parsed as Prometheus does (with the scrape token, if given)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(base + "/metrics", headers=headers, timeout=5)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def metric(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The value of the one sample called ``name`` with these labels (others may differ); None if none."""
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


@contextmanager
def upstream_at(port: int, env: dict[str, str], *extra: str) -> Iterator[Popen]:
    """The stand-in upstream on a given port (to bring a killed replica back at its old address)."""
    argv = [sys.executable, "-m", "jaif.testing.upstream", "--port", str(port), *extra]
    with started(argv, env, f"http://127.0.0.1:{port}/v1/models") as proc:
        yield proc


def remove_replica(database_url: str, name: str, url: str) -> None:
    with _session(database_url) as session:
        inference.remove_replica(session=session, model_name=name, url=url)
