"""A project's API keys page (a key shown once, revoked) and the usage page: tokens per day from the
gateway's usage records and GPU-hours per day from the compute accounting, drawn as SVG charts."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from jaif.access.models import ApiKey
from jaif.compute.models import JobRecord
from jaif.metering.models import UsageRecord


async def test_a_key_is_shown_once_and_revoked(portal, world, session):
    pia = world.user("pia")
    lab = world.project(pi=pia)
    session.commit()
    browser = await portal.as_(pia)
    bad = await browser.submit(f"/projects/{lab.id}/keys", {"name": "ci", "expires_in_days": "soon"})
    assert bad.status_code == 400 and 'id="f-expires_in_days-error"' in bad.text and 'value="soon"' in bad.text
    made = await browser.submit(f"/projects/{lab.id}/keys", {"name": "laptop", "expires_in_days": "30"})
    assert made.status_code == 200
    secret = re.search(r'<code class="secret" id="new-key">(jaif-[^<]+)</code>', made.text).group(1)
    page = (await browser.get(f"/projects/{lab.id}/keys")).text
    assert secret not in page and "laptop" in page
    key = session.scalar(select(ApiKey).where(ApiKey.project_id == lab.id))
    revoked = await browser.submit(f"/projects/{lab.id}/keys/{key.id}/revoke", {}, page=f"/projects/{lab.id}/keys")
    assert revoked.status_code == 303
    session.refresh(key)
    assert key.revoked_at is not None


def _usage(project_id: str, when: datetime, tokens: int) -> UsageRecord:
    return UsageRecord(request_id=uuid.uuid4().hex, project_id=project_id, endpoint="chat", model="m",
                       prompt_tokens=tokens // 2, completion_tokens=tokens - tokens // 2, total_tokens=tokens,
                       created_at=when)


def _job(project_id: str, when: datetime, gpu_hours: float) -> JobRecord:
    return JobRecord(cluster="test", job_id=uuid.uuid4().hex[:10], project_id=project_id, account="a", user="u",
                     name="train", partition="booster", state="completed", ended_at=when, elapsed_s=3600, nodes=1,
                     gpus=4, gpu_hours=gpu_hours, energy_kwh=1.0, energy_source="model", co2_kg=0.3)


async def test_the_usage_page_charts_tokens_and_gpu_hours_per_day(portal, world, session):
    pia, other = world.user("pia"), world.user("olga")
    lab, theirs = world.project(pi=pia), world.project(pi=other)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    session.add_all([
        _usage(lab.id, today, 1200), _usage(lab.id, today, 300), _usage(lab.id, yesterday, 700),
        _usage(lab.id, today - timedelta(days=40), 99_999), _usage(theirs.id, today, 5555),
        _job(lab.id, yesterday, 12.5), _job(lab.id, today, 4.0),
    ])
    session.commit()
    browser = await portal.as_(pia)
    page = (await browser.get("/usage")).text
    assert lab.name in page and theirs.name not in page
    assert "<strong>2,200</strong> tokens and <strong>16.50</strong> GPU-hours in these 30 days" in page
    assert page.count('<svg class="chart"') == 4 and 'role="img"' in page  # tokens, GPU-hours, kWh, kg CO2
    assert f"{today:%Y-%m-%d}: 1,500 tokens" in page and f"{yesterday:%Y-%m-%d}: 12.50 GPU-hours" in page
    assert f"<td>{yesterday:%Y-%m-%d}</td><td>700</td><td>12.50</td>" in page
    longer = (await browser.get(f"/usage?days=90&project={lab.id}")).text
    assert "<strong>102,199</strong> tokens" in longer


async def test_home_shows_usage_bars_of_the_allocations(portal, world, session):
    from jaif.allocations import service as allocations

    pia = world.user("pia")
    lab = world.project(pi=pia)
    allocations.allocate(session=session, project_id=lab.id, resource="gpu_hours", partition="booster",
                         amount=100, days=30)
    session.commit()
    session.add(_job(lab.id, datetime.now(UTC), 25.0))
    allocations.charge_gpu_hours(session=session, charges=[
        allocations.GpuCharge(project_id=lab.id, partition="booster", gpu_hours=25.0, at=datetime.now(UTC))])
    session.commit()
    browser = await portal.as_(pia)
    home = (await browser.get("/")).text
    assert "25 of 100 GPU-hours used (25 %)" in home
    assert '<meter min="0" max="100.0" value="25.0"' in home


async def test_usage_exports_as_csv_per_day_model_and_key_and_only_for_ones_own_projects(portal, world, session):
    import csv
    import io

    alice, bob = world.user("alice"), world.user("bob")
    lab, other = world.project(alice), world.project(bob)
    key = ApiKey(project_id=lab.id, name="=HYPERLINK(\"http://evil\")", key_hash="h" * 64, prefix="jaif-abc")
    session.add(key)
    session.flush()
    now = datetime.now(UTC)
    for record in (_usage(lab.id, now, 100), _usage(lab.id, now, 50), _usage(other.id, now, 7)):
        session.add(record)
    session.get(UsageRecord, session.scalars(select(UsageRecord.id).where(UsageRecord.project_id == lab.id)).first()
                ).api_key_id = key.id
    session.commit()
    browser = await portal.as_(alice)
    page = await browser.get("/usage")
    assert 'href="/usage.csv?days=30"' in page.text
    answer = await browser.get("/usage.csv?days=7")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["day", "project", "model", "key", "requests", "prompt_tokens", "completion_tokens",
                       "total_tokens"]
    body = sorted(rows[1:], key=lambda r: r[3])
    assert sorted((r[1], r[2], r[4], r[7]) for r in body) == [(lab.name, "m", "1", "100"), (lab.name, "m", "1", "50")]
    keyed = [r for r in body if r[3]]
    assert keyed and keyed[0][3].startswith("'=HYPERLINK")  # a formula is never a formula in a spreadsheet
    assert other.name not in answer.text
    refused = await browser.get(f"/usage.csv?project={other.id}")
    assert refused.status_code == 404


async def test_notifications_list_what_was_sent_with_a_badge_until_read_and_only_to_a_confirmed_owner(
        portal, world, session):
    from jaif.access.models import User
    from jaif.notify import service as notify

    alice, eve = world.user("alice"), world.user("eve", verified=False)
    alice_email, eve_email = session.get(User, alice.user_id).email, session.get(User, eve.user_id).email
    notify.post(session=session, to=alice_email, subject="Job 7 (train) ended: completed", body="exit code 0")
    notify.post(session=session, to=alice_email, subject="Your application was granted", body="Welcome.")
    notify.post(session=session, to=eve_email, subject="An invitation to lab", body="You are invited.")
    session.commit()
    browser = await portal.as_(alice)
    home = await browser.get("/usage")
    assert 'href="/notifications"' in home.text and 'aria-label="2 unread"' in home.text
    page = await browser.get("/notifications")
    assert page.status_code == 200 and "Job 7 (train) ended: completed" in page.text
    assert "Your application was granted" in page.text and "An invitation to lab" not in page.text
    read = await browser.submit("/notifications/read", {}, page="/notifications")
    assert read.status_code == 303
    assert "unread" not in (await browser.get("/usage")).text.split("</nav>")[0]
    # an account whose address is not confirmed reads nothing sent to that address
    unconfirmed = await portal.as_(eve)
    theirs = await unconfirmed.get("/notifications")
    assert "An invitation to lab" not in theirs.text and "Confirm your e-mail address" in theirs.text
