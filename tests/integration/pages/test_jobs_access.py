"""Who sees and cancels which job in the portal: another project's jobs, job pages, project job lists and
submit form do not exist for a user (404) and are never listed; operators see every job, filter them by
project and state, and cancel any; the lists come in pages with what was charged and how long jobs ran."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jaif.compute.models import Job, JobRecord
from tests.integration.pages.test_jobs import FORM, error_of, grant, job_count, post_form, wait_for
from tests.support.portal import csrf_of

_SEQ = iter(range(900_000, 10_000_000))


def finished_job(db, project, user, *, state: str = "completed", minutes: int = 62, gpu_hours: float | None = None,
                 when: datetime | None = None, reason: str = "") -> Job:
    """A job the local executor ran earlier, as its row (and its accounting record, with ``gpu_hours``); one
    still ``pending`` is one the executor no longer knows, so it stays as it is."""
    end = when or datetime.now(UTC) - timedelta(hours=1)
    job = Job(scheduler="local", cluster="local", job_id=str(next(_SEQ)), project_id=project.id, user_id=user.user_id,
              name="train", partition="local", account=project.name, nodes=1, gpus_per_node=2, charged_gpus=2,
              time_limit_min=120, template=None, params={}, workdir="/nonexistent", state=state, reason=reason,
              submitted_at=end - timedelta(minutes=minutes + 1), accounted_at=end if gpu_hours is not None else None)
    if state != "pending":
        job.started_at, job.ended_at = end - timedelta(minutes=minutes), end
    db.add(job)
    if gpu_hours is not None:
        db.add(JobRecord(cluster="local", job_id=job.job_id, project_id=project.id, account=project.name, user="u",
                         name="train", partition="local", state=state, ended_at=end, elapsed_s=minutes * 60, nodes=1,
                         gpus=2, gpu_hours=gpu_hours, energy_kwh=1.0, energy_source="model", co2_kg=0.4))
    db.flush()
    return job


@pytest.mark.parametrize("path", ["/jobs", "/jobs/new", "/jobs/1", "/projects/x/jobs"])
async def test_job_pages_send_visitors_to_sign_in(api, path):
    response = await api.anonymous.get(path)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


async def test_a_user_never_sees_or_cancels_another_projects_jobs(portal, world, session):
    alice, bob = world.user("alice"), world.user("bob")
    lab, own = world.project(alice), world.project(bob)
    grant(session, lab)
    grant(session, own)
    done = finished_job(session, lab, alice, gpu_hours=2.07)
    session.commit()
    as_alice, as_bob = await portal.as_(alice), await portal.as_(bob)
    made = await post_form(as_alice, FORM | {"project": lab.name, "script": "sleep 60"})
    running = made.headers["location"]
    await wait_for(as_alice, running, "badge job-running")

    for path in (running, f"/jobs/{done.job_id}", f"/projects/{lab.id}/jobs"):
        response = await as_bob.get(path)
        assert response.status_code == 404, path
        assert lab.name not in response.text, path
    listed = (await as_bob.get("/jobs")).text
    assert running not in listed and f"/jobs/{done.job_id}" not in listed and lab.name not in listed
    assert f'<option value="{lab.name}"' not in (await as_bob.get("/jobs/new")).text
    filtered = await as_bob.get("/jobs", params={"project": lab.name})
    assert filtered.status_code == 404 and "or you are not a member of it" in error_of(filtered.text, "project")
    assert running not in filtered.text and f"/jobs/{done.job_id}" not in filtered.text
    # cancelling with a valid token of bob's own session: still not there for him
    token = csrf_of((await as_bob.get("/jobs/new")).text)
    refused = await as_bob.client.post(running + "/cancel", data={"csrf_token": token})
    assert refused.status_code == 404
    assert (await as_bob.client.post(running + "/cancel", data={"csrf_token": "forged"})).status_code == 403
    # submitting to a project that is not his: refused beside the project, nothing submitted
    sneaky = await post_form(as_bob, FORM | {"project": lab.name, "script": "echo mine"})
    assert sneaky.status_code == 404 and "or you are not a member of it" in error_of(sneaky.text, "project")
    assert job_count(session, lab) == 2
    page = await wait_for(as_alice, running, "badge job-running")  # untouched by bob
    cancelled = await as_alice.client.post(running + "/cancel", data={"csrf_token": csrf_of(page)})
    assert cancelled.status_code == 303
    assert "badge job-cancelled" in (await as_alice.get(running)).text


async def test_operators_see_filter_and_cancel_every_job(portal, world, session):
    alice, bob, op = world.user("alice"), world.user("bob"), world.operator()
    lab, other = world.project(alice), world.project(bob)
    grant(session, lab)
    ok = finished_job(session, lab, alice, gpu_hours=2.07)
    failed = finished_job(session, other, bob, state="failed")
    session.commit()
    as_alice, as_op = await portal.as_(alice), await portal.as_(op)
    everything = (await as_op.get("/jobs")).text
    assert f"/jobs/{ok.job_id}" in everything and f"/jobs/{failed.job_id}" in everything
    assert 'id="f-project" name="project" type="text"' in everything  # any project, by name
    by_project = (await as_op.get("/jobs", params={"project": other.name})).text
    assert f"/jobs/{failed.job_id}" in by_project and f"/jobs/{ok.job_id}" not in by_project
    by_state = (await as_op.get("/jobs", params={"state": "failed"})).text
    assert f"/jobs/{failed.job_id}" in by_state and f"/jobs/{ok.job_id}" not in by_state
    assert "badge job-failed" in by_state and "Failed" in by_state
    page = await as_op.get(f"/jobs/{ok.job_id}")
    assert page.status_code == 200 and "1 h 02 min" in page.text and "2.07" in page.text
    assert (await as_op.get(f"/projects/{other.id}/jobs")).status_code == 200
    made = await post_form(as_alice, FORM | {"project": lab.name, "script": "sleep 60"})
    running = made.headers["location"]
    page = await wait_for(as_op, running, "badge job-running")
    cancelled = await as_op.client.post(running + "/cancel", data={"csrf_token": csrf_of(page)})
    assert cancelled.status_code == 303
    assert "badge job-cancelled" in (await as_alice.get(running)).text


async def test_a_users_jobs_come_in_pages_with_what_they_ran_and_were_charged(portal, world, session):
    alice = world.user("alice")
    lab, side = world.project(alice), world.project(alice)
    start = datetime.now(UTC) - timedelta(days=2)
    made = [finished_job(session, lab, alice, when=start + timedelta(minutes=i), gpu_hours=0.5 if i == 54 else None)
            for i in range(55)]
    finished_job(session, side, alice, state="timeout")
    waiting = finished_job(session, side, alice, state="pending", reason="Resources")
    session.commit()
    browser = await portal.as_(alice)
    first = (await browser.get("/jobs", params={"project": lab.name})).text
    assert "55 jobs, newest first: 1 to 50 on this page" in first
    assert f"/jobs/{made[54].job_id}" in first and f"/jobs/{made[4].job_id}" not in first
    assert "page=2" in first and "0.50" in first and "1 h 02 min" in first and "120 min" in first
    second = (await browser.get("/jobs", params={"project": lab.name, "page": "2"})).text
    assert f"/jobs/{made[4].job_id}" in second and f"/jobs/{made[5].job_id}" not in second
    mine = (await browser.get("/jobs")).text
    assert "57 jobs" in mine and f'<option value="{side.name}"' in mine
    pending = (await browser.get("/jobs", params={"state": "pending"})).text
    assert "1 job, newest first" in pending and f"/jobs/{waiting.job_id}" in pending
    assert "Pending</span> <span class=\"meta\">(Resources)</span>" in pending
    timeouts = (await browser.get(f"/projects/{side.id}/jobs", params={"state": "timeout"})).text
    assert "1 job, newest first" in timeouts and "Timed out" in timeouts
    assert (await browser.get("/jobs", params={"state": "bogus"})).status_code == 200  # an unknown state: no filter
