"""Files in and out of a job in a real browser (headless Chromium) against `jaif serve` on the local executor,
as Open OnDemand's file browser: a member uploads an input on the project's *Files* page, submits a job
that reads it (chosen under *Input files*) and writes an output, and downloads the output from the job's
page once the job has completed.

It leaves screenshots of the files page and the finished job in its pytest tmp dir.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.e2e.browser.conftest import sign_in
from tests.support.databases import one_database
from tests.support.procs import jaif

pytestmark = [pytest.mark.browser, pytest.mark.slow, one_database()]

SCRIPT = "mkdir -p out\ntr a-z A-Z < words.txt > out/shouted.txt\necho done\n"


def test_a_member_uploads_an_input_runs_a_job_on_it_and_downloads_its_output(site, context, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    email, project = f"fi-{suffix}@example.org", f"files-{suffix}"
    password = site.user(email)
    jaif(site.env, "org", "create", f"Files {suffix}", "--sector", "academia", "--country", "DE")
    jaif(site.env, "project", "create", project, "--org", f"Files {suffix}", "--member", email)
    jaif(site.env, "allocation", "create", "--project", project, "--partition", "local", "--gpu-hours", "10",
         "--days", "30")

    page = context.new_page()
    sign_in(page, site, email, password)
    page.get_by_role("link", name=project).first.click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Files").click()
    page.wait_for_url(re.compile(r".*/projects/[^/]+/files$"))
    page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": "words.txt", "mimeType": "text/plain", "buffer": b"hello from the portal\n"}])
    page.get_by_role("button", name="Upload").click()
    page.get_by_text("words.txt is uploaded as").wait_for()
    row = page.locator("table.files tr", has=page.get_by_role("link", name="words.txt"))
    file_id = row.locator("code").inner_text()
    assert file_id.startswith("file-") and "22 bytes" in row.inner_text()
    page.screenshot(path=str(tmp_path / "files.png"), full_page=True)

    page.get_by_role("link", name="Jobs", exact=True).first.click()
    page.get_by_role("link", name="Submit a job").click()
    page.get_by_label("Project", exact=True).select_option(project)
    page.get_by_label("GPUs per node").fill("1")
    page.get_by_label("Time limit in minutes").fill("5")
    page.get_by_label("Batch script").fill(SCRIPT)
    page.get_by_label("Input files (optional)").select_option(file_id)
    page.get_by_role("button", name="Submit the job").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    page.locator("#job-state").get_by_text("Completed").wait_for(timeout=60_000)
    assert "words.txt" in page.locator("#job-facts").inner_text()

    files = page.locator("#job-files")
    files.get_by_role("link", name="out/").click()  # the folder, in the file browser
    page.wait_for_url(re.compile(r".*/files\?path=out$"))
    with page.expect_download() as download:
        page.get_by_role("link", name="shouted.txt").click()
    saved = tmp_path / "shouted.txt"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "shouted.txt"
    assert saved.read_bytes() == b"HELLO FROM THE PORTAL\n"
    page.go_back()
    page.screenshot(path=str(tmp_path / "job-files.png"), full_page=True)
