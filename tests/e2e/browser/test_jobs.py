"""A job from the portal in a real browser (headless Chromium) against `jaif serve` on the local executor:
a member of a project with GPU-hours opens *Jobs*, submits a batch script (a time limit over the
partition's maximum first: the error beside the field, the input kept), and watches the job's page follow
it, without reloading, until it has completed and shows its output.

It leaves screenshots of the form, the finished job and the list on a phone in its pytest tmp dir.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.e2e.browser.conftest import sign_in
from tests.support.databases import one_database
from tests.support.procs import jaif

pytestmark = [pytest.mark.browser, pytest.mark.slow, one_database()]

SCRIPT = 'echo "hello from job $JAIF_JOB_ID"\nfor i in 1 2 3; do echo "step $i"; sleep 1; done\necho "warned" >&2\n'


def test_a_member_submits_a_job_and_reads_its_output(site, context, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    email, project = f"jo-{suffix}@example.org", f"lab-{suffix}"
    password = site.user(email)
    jaif(site.env, "org", "create", f"Lab {suffix}", "--sector", "academia", "--country", "DE")
    jaif(site.env, "project", "create", project, "--org", f"Lab {suffix}", "--member", email)
    jaif(site.env, "allocation", "create", "--project", project, "--partition", "local", "--gpu-hours", "10",
         "--days", "30")

    page = context.new_page()
    sign_in(page, site, email, password)
    page.get_by_role("link", name="Jobs", exact=True).first.click()
    page.get_by_role("link", name="Submit a job").click()
    page.get_by_label("Project", exact=True).select_option(project)
    page.get_by_label("GPUs per node").fill("1")
    page.get_by_label("Batch script").fill(SCRIPT)
    page.get_by_label("Time limit in minutes").fill("100000")
    page.get_by_role("button", name="Submit the job").click()

    time_field = page.get_by_label("Time limit in minutes")
    assert time_field.get_attribute("aria-invalid") == "true" and time_field.input_value() == "100000"
    assert "runs a job for at most 1,440 minutes" in page.locator("#f-time-error").inner_text()  # the form's words
    assert page.get_by_label("Batch script").input_value().strip() == SCRIPT.strip()
    page.screenshot(path=str(tmp_path / "job-form.png"), full_page=True)

    time_field.fill("5")
    time_field.press("Enter")  # Enter in a field submits the job
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    assert "is submitted to partition local" in page.content()
    # /static/job.js follows the job on this page: no reload
    page.locator("#job-state").get_by_text("Completed").wait_for(timeout=60_000)
    page.locator("#stdout").get_by_text("step 3").wait_for()
    output = page.locator("#stdout").inner_text()
    job_id = page.url.rsplit("/", 1)[1]
    assert f"hello from job {job_id}" in output
    assert "warned" in page.locator("#stderr").inner_text()
    assert page.get_by_role("button", name="Cancel the job").count() == 0
    page.screenshot(path=str(tmp_path / "job-done.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen but the table
    page.get_by_role("link", name="Jobs", exact=True).first.click()
    row = page.locator("table.jobs tr", has=page.get_by_role("link", name=job_id, exact=True))
    assert "Completed" in row.inner_text() and "local" in row.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(tmp_path / "jobs-phone.png"), full_page=True)
