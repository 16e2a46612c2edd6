"""Reports from the imported job records and the token ledger: per project, organisation and call."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from jaif.applications.models import Application
from jaif.calls.models import AccessCall
from jaif.compute import reports
from jaif.compute.models import JobRecord
from jaif.errors import InvalidRequest, NotFound
from jaif.metering.models import UsageRecord
from tests.integration.compute.conftest import grant

NOW = datetime.now(UTC)


def record(session, project, *, partition="gpu", gpu_hours=1.0, kwh=0.7, source="model", days_ago=1):
    session.add(JobRecord(
        cluster="c", job_id=uuid.uuid4().hex[:8], project_id=project.id, account="a", user="u", name="n",
        partition=partition, state="completed", ended_at=NOW - timedelta(days=days_ago), elapsed_s=3600, nodes=1,
        gpus=1, gpu_hours=gpu_hours, energy_kwh=kwh, energy_source=source, co2_kg=kwh * 0.38,
    ))
    session.flush()


def tokens(session, project, n):
    session.add(UsageRecord(request_id=uuid.uuid4().hex, project_id=project.id, endpoint="chat", model="m",
                            prompt_tokens=n, total_tokens=n))
    session.flush()


def report(session, compute, actor, **kw):
    return reports.report(session=session, settings=compute.settings, actor=actor, **kw)


def test_project_report_sums_gpu_hours_energy_co2_and_tokens(session, compute, world):
    alice = world.user()
    lab = world.project(alice)
    grant(session, lab, gpu_hours=100)
    record(session, lab, gpu_hours=2, kwh=1.4)
    record(session, lab, gpu_hours=1, kwh=2.0, source="slurm", partition="booster")
    record(session, lab, gpu_hours=5, kwh=3.0, days_ago=40)
    tokens(session, lab, 1234)
    r = report(session, compute, alice, project_name=lab.name)
    assert (r.jobs, r.gpu_hours, r.energy_kwh, r.tokens) == (3, 8, pytest.approx(6.4), 1234)
    assert r.co2_kg == pytest.approx(6.4 * 0.38) and r.allocated_gpu_hours == 100
    assert (r.energy_measured_kwh, r.energy_modelled_kwh) == (pytest.approx(2.0), pytest.approx(4.4))
    assert [p.partition for p in r.partitions] == ["booster", "gpu"]
    recent = report(session, compute, alice, project_name=lab.name, since=NOW - timedelta(days=7))
    assert (recent.jobs, recent.gpu_hours) == (2, 3)
    rows = list(csv.reader(io.StringIO(reports.to_csv(r))))
    assert rows[0][:4] == ["scope", "name", "partition", "jobs"] and rows[-1][2:4] == ["total", "3"]
    assert any("GPU-hours: 8.00 (of 100 allocated)" in line for line in reports.lines(r))


def test_organisation_and_call_reports(session, compute, world):
    op = world.operator()
    a, b = world.project(world.user()), world.project(world.user())
    b.organisation_id = a.organisation_id
    record(session, a, gpu_hours=1)
    record(session, b, gpu_hours=2)
    org = report(session, compute, op, org_name=a.organisation.name)
    assert org.scope == "organisation" and org.gpu_hours == 3 and org.projects == sorted([a.name, b.name])
    call = AccessCall(slug=f"c-{uuid.uuid4().hex[:6]}", name="AI Factory Large Scale", kind="large",
                      opens_at=NOW - timedelta(days=90))
    session.add(call)
    session.flush()
    session.add(Application(call_id=call.id, applicant_id=op.user_id, project_id=b.id, state="allocated"))
    session.flush()
    by_call = report(session, compute, op, call=call.slug)
    assert (by_call.scope, by_call.name, by_call.gpu_hours, by_call.projects) == ("call", call.name, 2, [b.name])


def test_others_projects_are_not_reported_to_you(session, compute, world):
    lab = world.project(world.user())
    with pytest.raises(NotFound):
        report(session, compute, world.user("mallory"), project_name=lab.name)
    with pytest.raises(InvalidRequest, match="name one project"):
        report(session, compute, world.operator())
