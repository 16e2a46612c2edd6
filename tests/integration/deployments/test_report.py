"""A deployment's report with real rows: replica jobs submitted by the deployments service, finished and
charged by the accounting import (compute's, through the fake of our own Scheduler), tokens from usage
records of its model; the service, and the operators' REST API."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest

from jaif.compute import accounting
from jaif.compute.naming import project_account
from jaif.db.base import utcnow
from jaif.deployments import reports, service
from jaif.errors import InvalidRequest, NotFound
from jaif.metering.models import UsageRecord
from tests.integration.compute.conftest import grant


def served(session, model: str, prompt: int, completion: int, *, created=None) -> None:
    session.add(UsageRecord(request_id=uuid.uuid4().hex, project_id="p", endpoint="chat", model=model,
                            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                            created_at=created or utcnow()))
    session.flush()


@pytest.fixture
def charged(session, world, compute, scheduler):
    """Deployment "chat" with three replica jobs: two finished and imported (1 GPU x 63 s, modelled
    energy; 1 GPU x 3600 s with Slurm's measured energy), one still running; 1,200 tokens served."""
    lab = world.project()
    grant(session, lab, gpu_hours=10, partition="gpu")
    deployment = service.create_deployment(
        session=session, compute=compute, name="chat", model="smollm2-135m-instruct", engine="llama-cpp",
        partition="gpu", project=lab.name, gpus_per_replica=1, walltime_minutes=120)
    replicas = [service.submit_replica(session=session, compute=compute, deployment=deployment) for _ in range(3)]
    account = project_account(lab.name)
    scheduler.finish(replicas[0].job_id, seconds=63, account=account)
    scheduler.finish(replicas[1].job_id, seconds=3600, account=account, energy_j=2.5 * 3_600_000)

    @contextmanager
    def transaction():  # what the CLI passes: a transaction per call (here a savepoint of the test's)
        with session.begin_nested():
            yield session

    result = accounting.import_accounting(session_factory=transaction, compute=compute)
    assert result.imported == 2
    served(session, "chat", 1000, 150)
    served(session, "chat", 40, 10)
    served(session, "other", 5000, 5000)  # another model's tokens are not the deployment's
    served(session, "chat", 7, 7, created=deployment.created_at - timedelta(days=1))  # before it existed
    return deployment


def test_the_report_sums_the_charged_replica_jobs_and_the_tokens_served(session, charged, compute):
    r = reports.report(session=session, name="chat")
    assert (r.deployment, r.model, r.project) == ("chat", "smollm2-135m-instruct", charged.project.name)
    assert (r.replicas, r.replicas_uncharged) == (2, 1)
    # 63 s x 1 GPU = 0.0175 GPU-hours (0.017499999999999998 unrounded), plus one hour
    assert r.gpu_hours == 1.0175
    # modelled: 700 W x 63 s = 0.01225 kWh; measured: 2.5 kWh
    assert (r.energy_kwh, r.energy_measured_kwh, r.energy_modelled_kwh) == (2.51225, 2.5, 0.01225)
    assert (r.requests, r.prompt_tokens, r.completion_tokens, r.tokens) == (2, 1040, 160, 1200)
    assert r.kwh_per_1k_tokens == pytest.approx(2.51225 / 1.2) and r.kwh_per_1k_tokens == 2.09354
    assert r.since == charged.created_at and r.until is None
    text = "\n".join(reports.lines(r))
    assert "2 charged, 1 not yet" in text and "1200 (1040 prompt + 160 completion, 2 requests)" in text
    assert "per 1,000 tokens: 2.09354 kWh" in text
    rows = reports.to_csv(r).splitlines()
    assert rows[0].startswith("deployment,model,project") and rows[1].endswith(",1200,2.09354")


def test_a_period_counts_what_ended_in_it_and_no_tokens_gives_null(session, charged):
    later = reports.report(session=session, name="chat", since=utcnow() + timedelta(minutes=1))
    assert (later.replicas, later.gpu_hours, later.energy_kwh, later.tokens) == (0, 0.0, 0.0, 0)
    assert later.kwh_per_1k_tokens is None and later.replicas_uncharged == 1
    assert any("n/a (no tokens served)" in line for line in reports.lines(later))
    with pytest.raises(InvalidRequest, match="--until must be after --since"):
        reports.report(session=session, name="chat", until=charged.created_at - timedelta(hours=1))
    with pytest.raises(NotFound):
        reports.report(session=session, name="nope")


async def test_operators_read_it_through_the_api(api, session, world, charged):
    session.commit()
    operator, alice = world.operator(), world.user("alice")
    session.commit()
    path = "/api/v1/deployments/chat/report"
    assert (await api.as_(alice).get(path)).status_code == 403
    got = await api.as_(operator).get(path)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["gpu_hours"], body["energy_kwh"], body["tokens"], body["kwh_per_1k_tokens"]) == (
        1.0175, 2.51225, 1200, 2.09354)
    ahead = (utcnow() + timedelta(minutes=1)).replace(tzinfo=None).isoformat()  # no zone: UTC
    later = (await api.as_(operator).get(path, params={"since": ahead})).json()
    assert (later["replicas"], later["tokens"], later["kwh_per_1k_tokens"]) == (0, 0, None)
    for bad in ({"since": "yesterday"}, {"until": "9999-12-31T23:59:59-14:00"}, {"since": "0001-01-01T00:00+01:00"}):
        refused = await api.as_(operator).get(path, params=bad)
        assert refused.status_code == 400 and refused.json()["error"]["param"].endswith(next(iter(bad))), refused.text
    assert (await api.as_(operator).get("/api/v1/deployments/nope/report")).status_code == 404
