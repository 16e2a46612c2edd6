"""Files in and out of jobs (issue 14, item 8), in the portal and the REST API, with real jobs on the local
executor: a project's files page (upload within the size and count limits, download, delete), a job given
one of them as its input, its directory browsed and its output downloaded; and the refusals: another
project's files and jobs (404), a path with '..' or through a symbolic link, an input of another project."""

from __future__ import annotations

import re

from sqlalchemy import select

from jaif.compute.models import Job
from jaif.files.models import StoredFile
from tests.integration.pages.test_jobs import FORM, error_of, grant, job_count, post_form, wait_for
from tests.support.portal import csrf_of

SCRIPT = """set -e
mkdir -p out
tr a-z A-Z < data.txt > out/result.txt
ln -s /etc/passwd leak
ln -s / root
ln -s .. up
"""


async def upload(browser, project, name: str, content: bytes, purpose: str = "user_data"):
    page = await browser.get(f"/projects/{project.id}/files")
    assert page.status_code == 200, page.text[:500]
    return await browser.client.post(f"/files/upload?project={project.id}",
                                     data={"csrf_token": csrf_of(page.text), "purpose": purpose},
                                     files={"file": (name, content, "application/octet-stream")})


def stored(db, project) -> list[StoredFile]:
    db.expire_all()
    return list(db.scalars(select(StoredFile).where(StoredFile.project_id == project.id)))


async def test_a_project_file_is_uploaded_listed_downloaded_and_deleted(portal, world, session):
    alice = world.user("alice")
    lab = world.project(alice)
    session.commit()
    browser = await portal.as_(alice)
    assert f'href="/projects/{lab.id}/files"' in (await browser.get(f"/projects/{lab.id}")).text
    made = await upload(browser, lab, "notes <b>.txt", b"hello files\n")
    assert made.status_code == 303 and made.headers["location"] == f"/projects/{lab.id}/files"
    [row] = stored(session, lab)
    assert (row.purpose, row.filename, row.bytes) == ("user_data", "notes <b>.txt", 12)
    file_id = row.id
    page = (await browser.get(f"/projects/{lab.id}/files")).text
    assert "notes &lt;b&gt;.txt" in page and "notes <b>" not in page and file_id in page and "12 bytes" in page
    got = await browser.get(f"/projects/{lab.id}/files/{file_id}/content")
    assert got.status_code == 200 and got.content == b"hello files\n"
    assert got.headers["content-disposition"].startswith("attachment")
    deleted = await browser.client.post(f"/projects/{lab.id}/files/{file_id}/delete",
                                        data={"csrf_token": csrf_of(page)})
    assert deleted.status_code == 303 and stored(session, lab) == []
    assert (await browser.get(f"/projects/{lab.id}/files/{file_id}/content")).status_code == 404


async def test_uploads_are_bounded_with_the_error_beside_the_field(portal, api, world, session):
    alice = world.user("alice")
    lab = world.project(alice)
    session.commit()
    api.app.state.settings.files.max_bytes = 2048
    api.app.state.settings.files.max_per_project = 2
    browser = await portal.as_(alice)
    too_big = await upload(browser, lab, "big.bin", b"x" * 2049)
    assert too_big.status_code == 413
    assert "larger than the limit of 2048 bytes" in error_of(too_big.text, "file")
    assert stored(session, lab) == [] and not list((api.app.state.settings.files_dir / "tmp").glob("*"))
    empty = await upload(browser, lab, "", b"")
    assert empty.status_code == 400 and "Choose a file" in error_of(empty.text, "file")
    bad_batch = await upload(browser, lab, "b.jsonl", b"not json\n", purpose="batch")
    assert bad_batch.status_code == 400 and 'aria-invalid="true"' in bad_batch.text
    assert (await upload(browser, lab, "odd.bin", b"x", purpose="fine-tune")).status_code == 400
    for name in ("one.txt", "two.txt"):
        assert (await upload(browser, lab, name, b"x" * 2048)).status_code == 303
    third = await upload(browser, lab, "three.txt", b"x")
    assert third.status_code == 400 and "the limit is 2" in error_of(third.text, "file")
    assert sorted(r.filename for r in stored(session, lab)) == ["one.txt", "two.txt"]


async def test_another_projects_files_do_not_exist_for_a_user(portal, world, session):
    alice, bob = world.user("alice"), world.user("bob")
    lab, own = world.project(alice), world.project(bob)
    session.commit()
    as_alice, as_bob = await portal.as_(alice), await portal.as_(bob)
    assert (await upload(as_alice, lab, "private.txt", b"alice's")).status_code == 303
    [row] = stored(session, lab)
    token = csrf_of((await as_bob.get(f"/projects/{own.id}/files")).text)
    assert (await as_bob.get(f"/projects/{lab.id}/files")).status_code == 404
    assert (await as_bob.get(f"/projects/{lab.id}/files/{row.id}/content")).status_code == 404
    assert (await as_bob.get(f"/projects/{own.id}/files/{row.id}/content")).status_code == 404  # his project, her file
    assert (await as_bob.client.post(f"/projects/{lab.id}/files/{row.id}/delete",
                                     data={"csrf_token": token})).status_code == 404
    assert (await as_bob.client.post(f"/projects/{own.id}/files/{row.id}/delete",
                                     data={"csrf_token": token})).status_code == 404
    sneaky = await as_bob.client.post(f"/files/upload?project={lab.id}", data={"csrf_token": token},
                                      files={"file": ("x.txt", b"bob's", "text/plain")})
    assert sneaky.status_code == 404
    forged = await as_alice.client.post(f"/files/upload?project={lab.id}", data={"csrf_token": "forged"},
                                        files={"file": ("x.txt", b"x", "text/plain")})
    assert forged.status_code == 403
    assert [r.id for r in stored(session, lab)] == [row.id] and stored(session, own) == []


async def test_a_job_reads_its_input_and_its_outputs_are_browsed_and_downloaded(portal, api, world, session):
    alice, bob = world.user("alice"), world.user("bob")
    lab, own = world.project(alice), world.project(bob)
    grant(session, lab)
    grant(session, own)
    session.commit()
    as_alice, as_bob = await portal.as_(alice), await portal.as_(bob)
    assert (await upload(as_alice, lab, "data.txt", b"shout this\n")).status_code == 303
    assert (await upload(as_bob, own, "bobs.txt", b"bob's own\n")).status_code == 303
    [mine], [his] = stored(session, lab), stored(session, own)
    form = (await as_alice.get("/jobs/new")).text
    assert f'<option value="{mine.id}">{lab.name}: data.txt' in form and his.id not in form

    # another project's file as an input: refused beside the field, nothing submitted
    refused = await post_form(as_alice, FORM | {"project": lab.name, "script": SCRIPT, "inputs": his.id})
    assert refused.status_code == 400 and f"file '{his.id}' in project {lab.name}" in error_of(refused.text,
                                                                                                   "inputs")
    assert job_count(session, lab) == 0

    made = await post_form(as_alice, FORM | {"project": lab.name, "script": SCRIPT, "inputs": mine.id})
    assert made.status_code == 303, made.text[-2000:]
    path = made.headers["location"]
    job_id = re.fullmatch(r"/jobs/(\d+)", path).group(1)
    page = await wait_for(as_alice, path, "badge job-completed")
    assert "data.txt" in page and mine.id in page  # its input, named
    assert f'href="/jobs/{job_id}/files?path=out"' in page
    assert f'href="/jobs/{job_id}/files/content?path=job.sh"' in page
    assert "leak <span" in page and "a symbolic link: not followed" in page
    assert 'files/content?path=leak"' not in page and "files?path=root" not in page

    folder = await as_alice.get(f"/jobs/{job_id}/files", params={"path": "out"})
    assert folder.status_code == 200 and 'files/content?path=out/result.txt"' in folder.text
    result = await as_alice.get(f"/jobs/{job_id}/files/content", params={"path": "out/result.txt"})
    assert result.status_code == 200 and result.content == b"SHOUT THIS\n"
    assert result.headers["content-disposition"] == "attachment; filename*=utf-8''result.txt"
    copy = await as_alice.get(f"/jobs/{job_id}/files/content", params={"path": "data.txt"})
    assert copy.content == b"shout this\n"

    # traversal and links: refused, never followed
    for bad, status in [("../..", 400), ("/etc/passwd", 400), ("out/../../x", 400), ("leak", 404),
                        ("root/etc/passwd", 404), ("up/" + job_id, 404)]:
        got = await as_alice.get(f"/jobs/{job_id}/files/content", params={"path": bad})
        assert got.status_code == status, (bad, got.status_code)
        assert b"root:" not in got.content
        listed = await as_alice.get(f"/jobs/{job_id}/files", params={"path": bad})
        assert listed.status_code == status, (bad, listed.status_code)
    # another project's job: its files are not there for bob
    assert (await as_bob.get(f"/jobs/{job_id}/files")).status_code == 404
    assert (await as_bob.get(f"/jobs/{job_id}/files/content", params={"path": "out/result.txt"})).status_code == 404

    # the same over the REST API, with personal access tokens
    alice_api, bob_api = api.as_(alice), api.as_(bob)
    listing = (await alice_api.get(f"/api/v1/jobs/{job_id}/files")).json()
    kinds = {e["name"]: e["kind"] for e in listing["entries"]}
    assert kinds["out"] == "dir" and kinds["leak"] == "link" and kinds["data.txt"] == "file"
    assert not listing["truncated"]
    got = await alice_api.get(f"/api/v1/jobs/{job_id}/files/content", params={"path": "out/result.txt"})
    assert got.content == b"SHOUT THIS\n"
    shown = (await alice_api.get(f"/api/v1/jobs/{job_id}")).json()
    assert shown["inputs"] == [{"id": mine.id, "name": "data.txt"}]
    assert (await bob_api.get(f"/api/v1/jobs/{job_id}/files")).status_code == 404
    assert (await alice_api.get(f"/api/v1/jobs/{job_id}/files", params={"path": ".."})).status_code == 400


async def test_the_batch_inference_input_is_chosen_from_the_projects_files(portal, world, session):
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab)
    session.commit()
    browser = await portal.as_(alice)
    assert (await upload(browser, lab, "prompts.jsonl", b'{"prompt": "hi"}\n')).status_code == 303
    [row] = stored(session, lab)
    chosen = FORM | {"project": lab.name, "template": "batch-inference", "shown": "batch-inference"}
    shown = await post_form(browser, chosen | {"action": "choose"})
    assert '<select id="f-param_input" name="param_input"' in shown.text
    assert f'<option value="{row.id}">{lab.name}: prompts.jsonl' in shown.text
    typed = await post_form(browser, chosen | {"param_input": "/etc/passwd"})
    assert typed.status_code == 400 and "no file '/etc/passwd'" in error_of(typed.text, "param_input")
    assert job_count(session, lab) == 0
    made = await post_form(browser, chosen | {"param_input": row.id, "time": "1"})
    assert made.status_code == 303, made.text[-2000:]
    session.expire_all()
    job = session.scalar(select(Job).where(Job.project_id == lab.id))
    assert job.params["input"] == row.id and job.inputs == [{"id": row.id, "name": "prompts.jsonl"}]
    script = await browser.get(f"/jobs/{job.job_id}/files/content", params={"path": "job.sh"})
    assert "exec python3 - prompts.jsonl results.jsonl" in script.text


async def test_listings_of_a_jobs_directory_are_bounded(portal, api, world, session):
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab)
    session.commit()
    api.app.state.settings.compute.max_listed_files = 55
    browser = await portal.as_(alice)
    made = await post_form(browser, FORM | {"project": lab.name, "script": "for i in $(seq 1 70); do touch f$i; done"})
    job_path = made.headers["location"]
    page = await wait_for(browser, job_path, "badge job-completed")
    assert "Only the first 50 entries are shown." in page and page.count("/files/content?path=") == 50
    browsed = (await browser.get(job_path + "/files")).text
    assert "Only the first 55 entries are shown." in browsed and browsed.count("/files/content?path=") == 55
    listing = (await api.as_(alice).get(f"/api/v1{job_path}/files")).json()
    assert len(listing["entries"]) == 55 and listing["truncated"]
