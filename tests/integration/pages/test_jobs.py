"""Jobs from the portal on the local executor (real processes): the submit form with a raw script (typed or
a file) and with a template and its parameters, the job's page with its output and state, the lists, and
every refusal shown next to its field with what was typed kept and nothing submitted."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from jaif.allocations import service as allocations
from jaif.compute.models import Job
from tests.support.portal import csrf_of

FORM = {"partition": "local", "gpus": "1", "nodes": "1", "time": "5", "name": "", "template": "", "shown": "",
        "action": "submit"}


def grant(db, project, gpu_hours: float = 10.0, **kw):
    return allocations.allocate(session=db, project_id=project.id, resource="gpu_hours", amount=gpu_hours,
                                partition="local", **{"days": 30, **kw})


def job_count(db, project) -> int:
    return db.scalar(select(func.count()).select_from(Job).where(Job.project_id == project.id))


async def post_form(browser, data: dict[str, str], files=None):
    """The submit form as a browser sends it (multipart, with the page's CSRF token)."""
    page = await browser.get("/jobs/new")
    assert page.status_code == 200, page.text[:500]
    return await browser.client.post("/jobs/new", data={**data, "csrf_token": csrf_of(page.text)},
                                     files=files or {"script_file": ("", b"", "application/octet-stream")})


async def wait_for(browser, path: str, words: str, timeout: float = 30.0) -> str:
    for _ in range(int(timeout / 0.2)):
        page = await browser.get(path)
        assert page.status_code == 200, page.text[:500]
        if words in page.text:
            return page.text
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never showed {words!r}:\n{page.text[-3000:]}")


def error_of(html: str, field: str) -> str:
    found = re.search(rf'<span class="error" id="f-{re.escape(field)}-error">([^<]*)</span>', html)
    assert found, f"no error next to {field}:\n{html[-4000:]}"
    return found.group(1).replace("&#39;", "'")


async def test_a_script_is_submitted_followed_and_its_output_read(portal, world, session):
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab)
    session.commit()
    browser = await portal.as_(alice)
    form = (await browser.get("/jobs/new")).text
    assert f'<option value="{lab.name}">' in form and '<option value="local"' in form
    assert 'for="f-script"' in form and 'name="script_file" type="file"' in form
    script = "#!/bin/bash\necho hello from GPU $CUDA_VISIBLE_DEVICES\necho oops >&2\n"
    made = await post_form(browser, FORM | {"project": lab.name, "name": "greeting", "script": script})
    assert made.status_code == 303, made.text[-2000:]
    path = made.headers["location"]
    job_id = re.fullmatch(r"/jobs/(\d+)", path).group(1)
    page = await wait_for(browser, path, "badge job-completed")
    assert "hello from GPU 0" in page and "oops" in page and "exit code 0" in page
    assert f"Job {job_id}: greeting" in page and "Cancel the job" not in page and "/static/job.js" not in page
    listed = (await browser.get("/jobs")).text
    assert f'href="/jobs/{job_id}"' in listed and "Completed" in listed and "not yet" in listed
    assert f'href="/jobs/{job_id}"' in (await browser.get(f"/projects/{lab.id}/jobs")).text
    assert f'href="/projects/{lab.id}/jobs"' in (await browser.get(f"/projects/{lab.id}")).text
    assert 'href="/jobs"' in listed  # the global navigation


async def test_a_script_file_and_a_running_job_cancelled(portal, world, session):
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab)
    session.commit()
    browser = await portal.as_(alice)
    made = await post_form(browser, FORM | {"project": lab.name, "script": "ignored, a file is chosen"},
                           files={"script_file": ("long.sh", b"echo started\nsleep 60\n", "text/x-sh")})
    assert made.status_code == 303, made.text[-2000:]
    path = made.headers["location"]
    page = await wait_for(browser, path, "badge job-running")
    assert "/static/job.js" in page and "Cancel the job" in page
    await wait_for(browser, path, "started")
    cancelled = await browser.client.post(path + "/cancel", data={"csrf_token": csrf_of(page)})
    assert cancelled.status_code == 303 and cancelled.headers["location"] == path
    page = (await browser.get(path)).text
    assert "badge job-cancelled" in page and "Cancel the job" not in page


async def test_a_template_shows_its_parameters_and_is_submitted(portal, world, session):
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab)
    session.commit()
    browser = await portal.as_(alice)
    form = (await browser.get(f"/jobs/new?template=python&project={lab.name}")).text
    assert 'id="f-param_script"' in form and "the Python file, relative to the job&#39;s directory" in form
    assert 'id="f-param_python"' in form and 'value="python3"' in form and 'id="f-script"' not in form
    # choosing another template keeps what was typed and submits nothing
    chosen = await post_form(browser, FORM | {"project": lab.name, "gpus": "2", "template": "torchrun",
                                              "action": "choose", "script": "echo kept"})
    assert chosen.status_code == 200 and 'id="f-param_port"' in chosen.text and 'value="29500"' in chosen.text
    assert 'id="f-gpus" name="gpus" type="text" value="2"' in chosen.text and "nothing is submitted yet" in chosen.text
    # a changed choice with the submit button is only a choice too
    changed = await post_form(browser, FORM | {"project": lab.name, "template": "python", "shown": ""})
    assert changed.status_code == 200 and 'id="f-param_script"' in changed.text
    missing = await post_form(browser, FORM | {"project": lab.name, "template": "python", "shown": "python",
                                               "param_script": " ", "param_args": "--fast"})
    assert missing.status_code == 400 and "Give the script" in error_of(missing.text, "param_script")
    assert 'value="--fast"' in missing.text and job_count(session, lab) == 0
    made = await post_form(browser, FORM | {"project": lab.name, "template": "python", "shown": "python",
                                            "param_script": "train.py", "param_args": "--epochs 3",
                                            "param_python": "python3"})
    assert made.status_code == 303, made.text[-2000:]
    page = (await browser.get(made.headers["location"])).text
    assert "template <code>python</code>" in page and "<code>script=train.py</code>" in page


async def test_bad_input_is_shown_next_to_its_field_kept_and_nothing_is_submitted(portal, world, session, tmp_path):
    alice = world.user("alice")
    lab, bare, old, spent = world.project(alice), world.project(alice), world.project(alice), world.project(alice)
    grant(session, lab, gpu_hours=1)
    ended = grant(session, old, starts_at=datetime.now(UTC) - timedelta(days=10), days=2)
    grant(session, spent, gpu_hours=2).used = 2.0
    session.commit()
    browser = await portal.as_(alice)
    base = FORM | {"project": lab.name, "script": "echo never"}
    for change, status, field, words in [
        ({"partition": "h100"}, 400, "partition", "Choose one of the partitions: local."),
        ({"gpus": "9"}, 400, "gpus", "Partition local has 4 GPUs per node: ask for at most 4 here"),
        ({"gpus": "two"}, 400, "gpus", "Enter a whole number of GPUs"),
        ({"nodes": "2"}, 400, "nodes", "Partition local has 1 node: ask for at most 1."),
        ({"nodes": "0"}, 400, "nodes", "Enter a whole number of nodes, 1 or more."),
        ({"time": "0"}, 400, "time", "Enter the time limit as a whole number of minutes, 1 or more"),
        ({"time": "100000"}, 400, "time", "Partition local runs a job for at most 1,440 minutes"),
        ({"time": ""}, 400, "time", "Enter the time limit"),
        ({"time": "90"}, 429, "time", "The job could use 1.50 GPU-hours (90 min x 1 GPUs)"),
        ({"script": ""}, 400, "script", "Type or paste a batch script"),
        ({"script": "  \n"}, 400, "script", "The script is not text"),
        ({"project": ""}, 400, "project", "Choose the project"),
        ({"project": bare.name}, 403, "partition", f"Project {bare.name} has no GPU-hour allocation on partition"),
        ({"project": old.name}, 403, "partition", f"allocation on partition local expired on {ended.ends_at:%Y-%m-%d}"),
        ({"project": spent.name}, 429, "partition", "is exhausted: 2.00 of 2 GPU-hours used"),
    ]:
        response = await post_form(browser, base | change)
        assert response.status_code == status, (change, response.status_code, response.text[-1500:])
        assert words in error_of(response.text, field), change
        assert 'aria-invalid="true"' in response.text and 'class="form-error" role="alert"' in response.text
        for name, value in (base | change).items():  # what was typed is kept
            if name in ("gpus", "nodes", "time", "name") and value:
                assert f'name="{name}" type="text" value="{value}"' in response.text, (change, name)
        if "script" in change and change["script"].strip():
            assert change["script"].strip() in response.text
    binary = await post_form(browser, base, files={"script_file": ("a.out", b"\x7fELF\x00\x01\xff\xfe", "x/y")})
    assert binary.status_code == 400 and "The script is not text" in error_of(binary.text, "script_file")
    assert "echo never" in binary.text
    for project in (lab, bare, old, spent):
        assert job_count(session, project) == 0
    left = [p for p in (tmp_path / "var" / "jobs").glob("*/*") if not p.parent.name.startswith(".")]
    assert not left, f"job directories were left behind: {left}"


async def test_every_mistake_of_the_form_is_told_at_once_in_its_words(portal, world, session):
    """Issue 14 (form polish): the form told one refusal at a time, in the command line's words
    ("--gpus counts GPUs per node: spread over more with --nodes")."""
    alice = world.user("alice")
    lab = world.project(alice)
    grant(session, lab)
    session.commit()
    browser = await portal.as_(alice)
    response = await post_form(browser, FORM | {"project": "", "gpus": "9", "nodes": "2", "time": "100000",
                                                "script": ""})
    assert response.status_code == 400
    page = response.text
    assert "Choose the project" in error_of(page, "project")
    assert "Partition local has 4 GPUs per node: ask for at most 4 here" in error_of(page, "gpus")
    assert "Partition local has 1 node: ask for at most 1." in error_of(page, "nodes")
    assert "Partition local runs a job for at most 1,440 minutes" in error_of(page, "time")
    assert "Type or paste a batch script" in error_of(page, "script")
    assert page.count('aria-invalid="true"') == 5 and "--" not in re.sub(r"<!--.*?-->", "", page.split("<main")[1])
    assert 'value="100000"' in page and job_count(session, lab) == 0
