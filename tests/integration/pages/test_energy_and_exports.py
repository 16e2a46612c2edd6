"""Energy and CO2 in the portal (a job's page, the usage page, the operator console per call), the usage
CSV per model, key and energy, the allocations CSV for a project's members and for operators, and figures
rounded for reading (never a float's binary noise such as 0.017499999999999998)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from jaif.access.models import ApiKey
from jaif.allocations import service as allocations
from jaif.applications.models import Application
from jaif.calls.models import AccessCall
from jaif.compute.models import JobRecord
from jaif.metering.models import UsageRecord
from tests.integration.pages.test_jobs_access import finished_job

NOISY = 0.017499999999999998  # 0.0175 as binary floating point sums it


def _job(project_id: str, when: datetime, *, kwh: float, co2: float, gpu_hours: float = 1.0,
         source: str = "model") -> JobRecord:
    return JobRecord(cluster="test", job_id=uuid.uuid4().hex[:10], project_id=project_id, account="a", user="u",
                     name="train", partition="booster", state="completed", ended_at=when, elapsed_s=3600, nodes=1,
                     gpus=4, gpu_hours=gpu_hours, energy_kwh=kwh, energy_source=source, co2_kg=co2)


def _usage(project_id: str, when: datetime, tokens: int, *, model: str = "m", key_id: str | None = None):
    return UsageRecord(request_id=uuid.uuid4().hex, project_id=project_id, endpoint="chat", model=model,
                       api_key_id=key_id, prompt_tokens=tokens // 2, completion_tokens=tokens - tokens // 2,
                       total_tokens=tokens, created_at=when)


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_a_jobs_page_shows_its_energy_and_co2_once_imported(portal, world, session):
    alice = world.user("alice")
    lab = world.project(alice)
    waiting = finished_job(session, lab, alice)
    done = finished_job(session, lab, alice, gpu_hours=2.0)
    record = session.scalar(select(JobRecord).where(JobRecord.job_id == done.job_id))
    record.energy_kwh, record.co2_kg, record.energy_source = NOISY, NOISY * 0.38, "slurm"
    session.commit()
    browser = await portal.as_(alice)
    page = (await browser.get(f"/jobs/{done.job_id}")).text
    assert "<dt>Energy</dt><dd>0.0175 kWh" in page and "measured by Slurm" in page
    assert "<dt>CO2</dt><dd>0.00665 kg" in page and "380 g CO2 per kWh" in page
    assert "0.0174999" not in page
    pending = (await browser.get(f"/jobs/{waiting.job_id}")).text
    assert "<dt>Energy</dt><dd>not yet" in pending


async def test_the_usage_page_charts_energy_and_co2_per_day_beside_tokens(portal, world, session):
    pia, other = world.user("pia"), world.user("olga")
    lab, theirs = world.project(pi=pia), world.project(pi=other)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    session.add_all([
        _usage(lab.id, today, 100),
        _job(lab.id, yesterday, kwh=2.8, co2=1.064), _job(lab.id, today, kwh=0.01, co2=0.0075),
        _job(lab.id, today, kwh=0.0075, co2=0.01), _job(theirs.id, today, kwh=999.0, co2=999.0),
    ])
    session.commit()
    browser = await portal.as_(pia)
    page = (await browser.get("/usage")).text
    assert "<strong>2.82</strong> kWh and emitting <strong>1.08</strong> kg CO2" in page
    assert page.count('<svg class="chart"') == 4
    assert f"{today:%Y-%m-%d}: 0.0175 kWh" in page and f"{yesterday:%Y-%m-%d}: 2.8 kWh" in page
    assert f"<td>{yesterday:%Y-%m-%d}</td><td>0</td><td>1.00</td><td>2.8</td><td>1.06</td>" in page
    assert "380 g CO2 per kWh" in page and theirs.name not in page and "999 kWh" not in page
    assert "0.0174999" not in page
    for by in ("model", "key", "energy"):
        assert f"by={by}" in page
    # A period the page does not offer is refused, naming the ones it does, never silently replaced.
    for path in ("/usage", "/usage.csv"):
        refused = await browser.get(path, params={"days": 5})
        assert refused.status_code == 400 and "days must be one of 7, 30, 90" in refused.text


async def test_usage_exports_per_model_per_key_and_energy_only_for_ones_own_projects(portal, world, session):
    alice, bob = world.user("alice"), world.user("bob")
    lab, other = world.project(alice), world.project(bob)
    key = ApiKey(project_id=lab.id, name="laptop", key_hash="k" * 64, prefix="jaif-lap")
    session.add(key)
    session.flush()
    now = datetime.now(UTC)
    session.add_all([
        _usage(lab.id, now, 100, model="a", key_id=key.id), _usage(lab.id, now, 50, model="a"),
        _usage(lab.id, now, 7, model="b", key_id=key.id), _usage(other.id, now, 9, model="a"),
        _job(lab.id, now, kwh=0.01, co2=NOISY, gpu_hours=0.1), _job(lab.id, now, kwh=0.0075, co2=0.0, gpu_hours=0.2),
    ])
    session.commit()
    browser = await portal.as_(alice)
    per_model = _rows((await browser.get("/usage.csv?by=model")).text)
    assert per_model == [["project", "model", "requests", "prompt_tokens", "completion_tokens", "total_tokens"],
                         [lab.name, "a", "2", "75", "75", "150"], [lab.name, "b", "1", "3", "4", "7"]]
    per_key = _rows((await browser.get("/usage.csv?by=key")).text)
    assert per_key[0][:2] == ["project", "key"]
    assert sorted((r[1], r[5]) for r in per_key[1:]) == [("", "50"), ("laptop (jaif-lap…)", "107")]
    answer = await browser.get("/usage.csv?by=energy&days=7")
    assert "usage-by-energy-my-projects" in answer.headers["content-disposition"]
    energy = _rows(answer.text)
    assert energy == [["day", "project", "jobs", "gpu_hours", "energy_kwh", "co2_kg"],
                      [f"{now:%Y-%m-%d}", lab.name, "2", "0.3", "0.0175", "0.0175"]]
    assert other.name not in answer.text
    assert (await browser.get(f"/usage.csv?by=model&project={other.id}")).status_code == 404
    assert (await browser.get("/usage.csv?by=everything")).status_code == 400


async def test_allocations_export_for_a_projects_members_and_for_operators(portal, world, session):
    pia, bob, op = world.user("pia"), world.user("bob"), world.operator()
    lab, theirs = world.project(pi=pia), world.project(pi=bob)
    mine = allocations.allocate(session=session, project_id=lab.id, resource="gpu_hours", partition="booster",
                                amount=12.5, days=30)
    allocations.allocate(session=session, project_id=lab.id, resource="tokens", amount=1_000_000, days=30)
    allocations.allocate(session=session, project_id=theirs.id, resource="gpu_hours", partition="booster",
                         amount=99, days=30)
    mine.used = NOISY
    session.commit()
    as_pia = await portal.as_(pia)
    page = (await as_pia.get(f"/projects/{lab.id}")).text
    assert f'href="/allocations.csv?project={lab.id}"' in page
    answer = await as_pia.get(f"/allocations.csv?project={lab.id}")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = _rows(answer.text)
    assert rows[0] == ["project", "resource", "partition", "amount", "used", "remaining", "unit", "starts_at",
                       "ends_at", "status"]
    assert sorted(r[1:7] for r in rows[1:]) == [
        ["gpu_hours", "booster", "12.5", "0.02", "12.48", "GPU-hours"],
        ["tokens", "", "1000000", "0", "1000000", "tokens"]]
    assert 'href="/allocations.csv"' in (await as_pia.get("/")).text
    assert theirs.name not in (await as_pia.get("/allocations.csv")).text
    assert (await as_pia.get(f"/allocations.csv?project={theirs.id}")).status_code == 404
    assert (await as_pia.get("/operator/allocations.csv")).status_code == 403
    as_op = await portal.as_(op)
    assert "/operator/allocations.csv" in (await as_op.get("/operator/allocations")).text
    every = _rows((await as_op.get("/operator/allocations.csv")).text)
    assert {lab.name, theirs.name} <= {r[0] for r in every[1:]}
    one = _rows((await as_op.get("/operator/allocations.csv", params={"project": theirs.name})).text)
    assert [r[0] for r in one[1:]] == [theirs.name]


async def test_the_console_shows_energy_and_co2_per_call_as_charts_and_a_table(portal, world, session):
    op, pia = world.operator(), world.user("pia")
    lab, renewed, loose = world.project(pi=pia), world.project(pi=pia), world.project(pi=pia)
    now = datetime.now(UTC)
    first = AccessCall(slug=f"c-{uuid.uuid4().hex[:6]}", name="Energy <Call>", kind="large_scale",
                       opens_at=now - timedelta(days=90))
    second = AccessCall(slug=f"d-{uuid.uuid4().hex[:6]}", name="Second call", kind="fast_lane",
                        opens_at=now - timedelta(days=90))
    session.add_all([first, second])
    session.flush()
    session.add_all([
        Application(call_id=first.id, applicant_id=pia.user_id, project_id=lab.id, state="allocated"),
        Application(call_id=first.id, applicant_id=pia.user_id, project_id=renewed.id, state="allocated"),
        # a renewal of the same project in another call: the project still counts under the first call only
        Application(call_id=second.id, applicant_id=pia.user_id, project_id=renewed.id, state="allocated",
                    kind="renewal"),
        _job(lab.id, now, kwh=2.0, co2=0.76, gpu_hours=4), _job(renewed.id, now, kwh=1.5, co2=0.57),
        _job(lab.id, now - timedelta(days=400), kwh=100.0, co2=38.0), _job(loose.id, now, kwh=7.0, co2=7.0),
    ])
    session.commit()
    as_op = await portal.as_(op)
    page = (await as_op.get("/operator")).text
    assert "Energy and CO2 per call" in page and "Energy &lt;Call&gt;" in page and "Energy <Call>" not in page
    assert page.count('<svg class="chart bars"') == 2
    assert "Energy &lt;Call&gt;: 3.5 kWh" in page and "Second call: " not in page
    assert "<td>2</td><td>5.00</td>\n    <td>3.5</td><td>0</td><td>1.33</td>" in page
    recent = (await as_op.get("/operator", params={"energy": "30"})).text
    assert "3.5 kWh" in recent
    every = (await as_op.get("/operator", params={"energy": "all"})).text
    assert "Energy &lt;Call&gt;: 104 kWh" in every  # 103.5 to three significant digits
    refused = await as_op.get("/operator", params={"energy": "7"})
    assert refused.status_code == 400 and "energy must be one of 30, 90, 365, all" in refused.text
