"""Jobs: submit (validated against the partition and the project's GPU-hour allocation), list, show,
cancel, logs, and keeping their state in step with the scheduler.

Who may do what: a user submits to, and sees the jobs of, the projects they are a member of; operators
(and the CLI) every project. Any other project does not exist for them (NotFound).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from jaif.access import service as access
from jaif.access.models import Project, User
from jaif.access.schemas import Actor
from jaif.access.visibility import project_visible
from jaif.compute import admission, templates, workspace
from jaif.compute.backend import Compute
from jaif.compute.isolation import JobPlan
from jaif.compute.models import Job, JobRecord, JobState, SlurmUser
from jaif.compute.naming import project_account
from jaif.compute.scheduler import JobRequest
from jaif.compute.schemas import JobFileOut, JobFiles, JobInput, JobLogs, JobOut
from jaif.compute.site import Partition
from jaif.compute.weights import resolve_weights
from jaif.db.base import new_id, utcnow
from jaif.errors import Forbidden, InvalidRequest, NotFound, Unavailable
from jaif.files import service as files
from jaif.notify import service as notify
from jaif.served import served_url

LOG_CHUNK = 1 << 20  # the most of one log a single read returns
MAX_INPUTS = 20  # project files one job may be given


def find_project(session: Session, actor: Actor, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name, project_visible(actor, Project.id)))
    if project is None:
        raise NotFound(f"no project {name!r} (or you are not a member of it)", param="project")
    return project


def get_partition(compute: Compute, name: str) -> Partition:
    partitions = compute.partitions()
    if name not in partitions:
        raise InvalidRequest(
            f"unknown partition {name!r}; partitions: {', '.join(sorted(partitions)) or 'none'}", param="partition"
        )
    return partitions[name]


def _check_resources(partition: Partition, *, gpus: int, nodes: int, time_min: int) -> None:
    p = partition
    if gpus < 0:
        raise InvalidRequest("GPUs must be 0 or more", param="gpus")
    if nodes < 1:
        raise InvalidRequest("nodes must be 1 or more", param="nodes")
    if time_min < 1:
        raise InvalidRequest("the time limit must be 1 minute or more", param="time")
    if gpus > p.gpus_per_node:
        raise InvalidRequest(
            f"partition {p.name} has {p.gpus_per_node} GPUs per node; {gpus} asked for "
            "(--gpus counts GPUs per node: spread over more with --nodes)", param="gpus",
        )
    if nodes > p.nodes:
        raise InvalidRequest(f"partition {p.name} has {p.nodes} nodes; {nodes} asked for", param="nodes")
    if p.max_walltime_min is not None and time_min > p.max_walltime_min:
        raise InvalidRequest(
            f"partition {p.name} allows at most {p.max_walltime_min} minutes; {time_min} asked for", param="time"
        )


def _script_text(script: bytes | str, limit: int) -> str:
    data = script.encode() if isinstance(script, str) else script
    if len(data) > limit:
        raise InvalidRequest(f"the script is {len(data)} bytes; at most {limit} are accepted", param="script")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the script is not text (not UTF-8): give a batch script", param="script") from None
    if "\x00" in text or not text.strip():
        raise InvalidRequest("the script is not text (it has NUL bytes or is empty): give a batch script",
                             param="script")
    return text if text.startswith("#!") else "#!/bin/bash\n" + text


def _run_as(session: Session, compute: Compute, actor: Actor, account: str) -> tuple[str | None, JobPlan | None]:
    """The Unix user the job runs as, and (local executor) how it is kept from the server. Slurm: the
    submitter's Slurm user name, else the submit user. Local: the project's own unprivileged account."""
    if compute.scheduler.kind == "local":
        if compute.isolation is None:
            raise Unavailable("the local executor has no isolation configured: local jobs are refused")
        plan = compute.isolation.plan(account)
        return plan.user, plan
    own = None
    if actor.user_id:
        own = session.scalar(select(SlurmUser.username).where(SlurmUser.user_id == actor.user_id))
    user = own or compute.submit_user
    if user == "root" and not actor.is_operator:
        raise Forbidden("your jobs would run as root: an operator must give you a Slurm user name first "
                        "(`jaif slurm user`), or set slurm.submit_user")
    return user, None


def _prepare_workdir(path: Path, script: str, run_as: str | None) -> Path:
    """The job's directory, mode 0700, given to the account it runs as; its project's directory above
    it passable (never listable) by the accounts of the project's jobs."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    if path.parent.stat().st_uid == os.geteuid():
        path.parent.chmod(0o711)
    path.mkdir(mode=0o700)
    script_path = path / "job.sh"
    script_path.touch(mode=0o600)
    script_path.write_text(script)
    if run_as and os.geteuid() == 0 and run_as != "root":
        try:
            who = pwd.getpwnam(run_as)
        except KeyError:
            shutil.rmtree(path, ignore_errors=True)
            raise InvalidRequest(f"the Slurm user {run_as} has no account on this machine", param="user") from None
        for item in (path, script_path):
            os.chown(item, who.pw_uid, who.pw_gid, follow_symlinks=False)
    return script_path


def _job_key(session: Session, compute: Compute, actor: Actor, job: Job) -> dict[str, str]:
    """The job's own gateway credential, as its environment gives it (OPENAI_API_KEY, OPENAI_BASE_URL)."""
    settings = compute.settings
    secret = access.create_job_key(session=session, project_id=job.project_id, user_id=actor.user_id, job_id=job.id,
                                   expires_at=_key_expiry(compute, job, utcnow()))
    return {"OPENAI_API_KEY": secret, "OPENAI_BASE_URL": served_url(settings) + "/v1"}


def _key_expiry(compute: Compute, job: Job, start: datetime) -> datetime:
    return start + timedelta(minutes=job.time_limit_min + compute.settings.compute.job_key_margin_min)


def submit_job(
    *,
    session: Session,
    compute: Compute,
    actor: Actor,
    project_name: str,
    partition: str,
    gpus: int,
    time_min: int,
    nodes: int = 1,
    template: str | None = None,
    params: dict[str, str] | None = None,
    script: bytes | str | None = None,
    name: str | None = None,
    environment: dict[str, str] | None = None,
    inputs: list[str] | None = None,
) -> Job:
    """Validate, check the allocation, write the job's directory and hand it to the scheduler.
    ``environment``: variables of the job's own (a deployment's replica key), kept out of its script.
    ``inputs``: ids of the project's files, copied into the job's directory (as a template's file parameters)."""
    project = find_project(session, actor, project_name)
    part = get_partition(compute, partition)
    _check_resources(part, gpus=gpus, nodes=nodes, time_min=time_min)
    if (template is None) == (script is None):
        raise InvalidRequest("give a template (--template) or a batch script (--script), one of them", param="script")
    refresh_jobs(session=session, compute=compute, project_id=project.id)
    charged = part.charged_gpus(nodes=nodes, gpus=gpus * nodes)
    admission.check(session=session, actor=actor, project=project, partition=part.name,
                    gpu_hours=charged * time_min / 60.0, time_min=time_min, charged_gpus=charged)
    run_as, plan = _run_as(session, compute, actor, project_account(project.name))
    job = Job(
        id=new_id(), scheduler=compute.scheduler.kind, cluster=compute.scheduler.cluster, job_id="",
        project_id=project.id,
        user_id=actor.user_id, partition=part.name, account=project_account(project.name), run_as=run_as,
        nodes=nodes, gpus_per_node=gpus, charged_gpus=charged, time_limit_min=time_min, template=template,
        params=dict(params or {}), state=JobState.pending, reason="submitted",
    )
    job.name = (name or template or "batch")[:200]
    workdir = compute.jobs_dir / job_dir_name(project.name)
    environment = dict(environment or {})
    if template is not None:
        tpl = templates.get(template)
        context = {"gpus_per_node": str(gpus)}
        if tpl.job_key:
            environment |= _job_key(session, compute, actor, job)
            context["base_url"] = environment["OPENAI_BASE_URL"]
        params = job.params
        if tpl.name == "lora" and params.get("model"):
            params = params | {"model": resolve_weights(session, params["model"])}
        copies, named = _input_files(session, compute, project, tpl, params, inputs)
        text = tpl.render(params | named, context)
    else:
        text = _script_text(script or b"", compute.settings.compute.max_script_bytes)
        copies, _named = _input_files(session, compute, project, None, {}, inputs)
    job.workdir = str(workdir)
    job.inputs = [{"id": file_id, "name": name} for file_id, name, _path in copies]
    script_path = _prepare_workdir(workdir, text, run_as)
    request = JobRequest(
        name=job.name, account=job.account, partition=part.name, nodes=nodes, gpus_per_node=gpus,
        time_limit_min=time_min, script=script_path, workdir=workdir, run_as=run_as, environment=environment,
        cpus=part.cpus_per_node, memory_mb=int(part.memory_gb_per_node * 1024), isolation=plan,
    )
    try:
        _copy_inputs(workdir, copies, run_as)
        job.job_id = compute.scheduler.submit(request)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    session.add(job)
    session.flush()
    return job


Copy = tuple[str, str, Path]  # a project file for a job: its id, its name in the job's directory, its bytes


def _input_files(session: Session, compute: Compute, project: Project, tpl: templates.JobTemplate | None,
                 params: dict[str, str], inputs: list[str] | None) -> tuple[list[Copy], dict[str, str]]:
    """The project's files the job gets: (id, name in its directory, where it is stored) each, and the
    template's file parameters as those names. Another project's file is refused as one that never was."""
    wanted: list[tuple[str | None, str]] = [(None, file_id) for file_id in inputs or []]
    if tpl is not None:
        wanted += [(key, params[key]) for key, spec in tpl.params.items() if spec.file and params.get(key)]
    if len(wanted) > MAX_INPUTS:
        raise InvalidRequest(f"a job is given at most {MAX_INPUTS} files; {len(wanted)} chosen", param="inputs")
    copies: dict[str, Copy] = {}
    named: dict[str, str] = {}
    for key, file_id in wanted:
        if file_id not in copies:
            try:
                row, path = files.job_input(session=session, files_dir=compute.settings.files_dir,
                                            project_id=project.id, file_id=file_id)
            except NotFound:
                raise InvalidRequest(
                    f"{f'--param {key}: ' if key else ''}no file {file_id!r} in project {project.name}: upload it "
                    "to the project's files (its Files page, or POST /v1/files with purpose user_data) and give "
                    "its id (file-…)", param=f"params.{key}" if key else "inputs",
                ) from None
            taken = {name for _id, name, _path in copies.values()}
            copies[file_id] = (file_id, workspace.input_name(row.filename, file_id, taken), path)
        if key is not None:
            named[key] = copies[file_id][1]
    return list(copies.values()), named


def _copy_inputs(workdir: Path, copies: list[Copy], run_as: str | None) -> None:
    """The job's input files into its directory, its account's (when jaif runs as root)."""
    uid = gid = None
    if copies and run_as and os.geteuid() == 0 and run_as != "root":
        who = pwd.getpwnam(run_as)
        uid, gid = who.pw_uid, who.pw_gid
    for file_id, name, path in copies:
        try:
            workspace.copy_input(path, workdir / name, uid=uid, gid=gid)
        except FileNotFoundError as exc:  # listed, but gone from the file store (deleted meanwhile)
            raise NotFound(f"the input file {file_id} is no longer stored", param="inputs") from exc


def job_dir_name(project_name: str) -> str:
    return f"{project_account(project_name)}/{utcnow():%Y%m%d-%H%M%S}-{os.urandom(4).hex()}"


def _query(actor: Actor):
    return select(Job).options(joinedload(Job.project)).where(project_visible(actor, Job.project_id))


def get_job(*, session: Session, compute: Compute, actor: Actor, job_id: str, refresh: bool = True) -> Job:
    job = session.scalar(_query(actor).where(Job.cluster == compute.scheduler.cluster, Job.job_id == str(job_id)))
    if job is None:
        raise NotFound(f"no job {job_id!r}", param="job_id")
    if refresh and not JobState(job.state).finished:
        refresh_jobs(session=session, compute=compute, jobs=[job])
    return job


def _filters(session: Session, compute: Compute, actor: Actor, project_name: str | None, state: str | None) -> list:
    found = [project_visible(actor, Job.project_id), Job.cluster == compute.scheduler.cluster]
    if project_name is not None:
        found.append(Job.project_id == find_project(session, actor, project_name).id)
    if state is not None:
        if state not in JobState.__members__:
            raise InvalidRequest(f"state must be one of {', '.join(JobState.__members__)}", param="state")
        found.append(Job.state == state)
    return found


def list_jobs(
    *, session: Session, compute: Compute, actor: Actor, project_name: str | None = None, state: str | None = None,
    limit: int = 200, offset: int = 0,
) -> list[Job]:
    """Newest first; the states of the unfinished ones among them refreshed from the scheduler."""
    query = select(Job).options(joinedload(Job.project)).where(*_filters(session, compute, actor, project_name, state))
    jobs = list(session.scalars(query.order_by(Job.submitted_at.desc(), Job.id).limit(limit).offset(offset)))
    refresh_jobs(session=session, compute=compute, jobs=[j for j in jobs if not JobState(j.state).finished])
    return jobs


def count_jobs(
    *, session: Session, compute: Compute, actor: Actor, project_name: str | None = None, state: str | None = None
) -> int:
    """How many jobs ``list_jobs`` would list without a limit (as the database has their states)."""
    where = _filters(session, compute, actor, project_name, state)
    return session.scalar(select(func.count()).select_from(Job).where(*where)) or 0


def charged_gpu_hours(session: Session, jobs: Iterable[Job]) -> dict[str, float]:
    """The GPU-hours the accounting import charged each job (by ``Job.id``); jobs not imported are left out."""
    keys = {(j.cluster, j.job_id): j.id for j in jobs}
    if not keys:
        return {}
    rows = session.execute(select(JobRecord.cluster, JobRecord.job_id, JobRecord.gpu_hours)
                           .where(JobRecord.cluster.in_(sorted({c for c, _ in keys})),
                                  JobRecord.job_id.in_(sorted({j for _, j in keys}))))
    return {keys[(c, j)]: hours for c, j, hours in rows if (c, j) in keys}


def recorded_energy(session: Session, job: Job) -> JobRecord | None:
    """The accounting's record of ``job`` (GPU-hours, kWh, kg CO2 and whether Slurm measured the energy);
    None until the accounting import has charged it."""
    return session.scalar(select(JobRecord).where(JobRecord.cluster == job.cluster, JobRecord.job_id == job.job_id))


def cancel_job(*, session: Session, compute: Compute, actor: Actor, job_id: str) -> Job:
    job = get_job(session=session, compute=compute, actor=actor, job_id=job_id)
    if JobState(job.state).finished:
        return job
    compute.scheduler.cancel(job.job_id)
    refresh_jobs(session=session, compute=compute, jobs=[job])
    if not JobState(job.state).finished:  # Slurm may need a moment; the next refresh confirms it
        job.reason = "cancelling"
    return job


def refresh_jobs(
    *, session: Session, compute: Compute, jobs: Iterable[Job] | None = None, project_id: str | None = None
) -> int:
    """Bring unfinished jobs' states in step with the scheduler; returns how many changed."""
    if jobs is None:
        query = select(Job).where(Job.cluster == compute.scheduler.cluster,
                                  Job.state.in_([JobState.pending, JobState.running]))
        if project_id is not None:
            query = query.where(Job.project_id == project_id)
        jobs = session.scalars(query)
    by_id = {j.job_id: j for j in jobs}
    if not by_id:
        return 0
    changed = 0
    ended = []
    for job_id, status in compute.scheduler.status(list(by_id)).items():
        job = by_id[job_id]
        new = (status.state.value, status.reason[:200], status.started_at, status.ended_at, status.exit_code)
        if new != (job.state, job.reason, job.started_at, job.ended_at, job.exit_code):
            was_finished = JobState(job.state).finished
            job.state, job.reason, job.started_at, job.ended_at, job.exit_code = new
            changed += 1
            if status.state.finished and not was_finished:  # once, not again for a later correction
                _tell_submitter(session, job)
        hosts = " ".join(status.hosts)[:1000]
        if hosts and hosts != job.hosts:  # kept once the job has ended (the scheduler forgets them)
            job.hosts = hosts
        if status.state.finished:
            ended.append(job.id)
        elif job.template and templates.get(job.template).job_key:  # its key lasts its time limit from its start
            access.extend_job_key(session=session, job_id=job.id,
                                  expires_at=_key_expiry(compute, job, status.started_at or utcnow()))
    access.end_job_keys(session=session, job_ids=ended)  # a job's key dies with it
    session.flush()
    return changed


def _tell_submitter(session: Session, job: Job) -> None:
    """A notice in the portal (not an e-mail) to whoever submitted the job, once it has ended."""
    user = session.get(User, job.user_id) if job.user_id else None
    if user is None:
        return
    how = f"exit code {job.exit_code}" if job.exit_code is not None else job.state
    notify.post(session=session, to=user.email, subject=f"Job {job.job_id} ({job.name}) ended: {job.state}",
                body=f"Your job {job.job_id} ({job.name}) on partition {job.partition} ended: {job.state}, {how}.\n"
                     f"Its output: /jobs/{job.job_id}")


def _owner(job: Job) -> int:
    """The uid a job's output files belong to: the account it ran as (the server's own when none)."""
    if job.run_as:
        try:
            return pwd.getpwnam(job.run_as).pw_uid
        except KeyError:
            return -1  # the account is gone: nothing is shown
    return os.geteuid()


def _tail(path: Path, offset: int, owner: int, last: int | None = None) -> tuple[str, int, str | None]:
    """What the log holds from ``offset`` on: read without following a symbolic link, and only when it is
    a regular file of the job's account (a job may have put anything at that name). Third: why not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return "", offset, None
    except OSError as exc:  # ELOOP: a symbolic link
        return "", offset, f"{path.name} is not shown: it is not a regular file ({(exc.strerror or str(exc)).lower()})"
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != owner:
            what = "not a regular file" if not stat.S_ISREG(st.st_mode) else "not owned by the job's account"
            return "", offset, f"{path.name} is not shown: it is {what}"
        if last is not None:
            offset = max(offset, st.st_size - last)
        f.seek(offset)
        data = f.read(LOG_CHUNK)
    return data.decode("utf-8", errors="replace"), offset + len(data), None


def job_logs(
    *, session: Session, compute: Compute, actor: Actor, job_id: str, stdout_offset: int = 0, stderr_offset: int = 0,
    last: int | None = None,
) -> JobLogs:
    """What the job wrote to stdout and stderr from the offsets on (readable while it runs); with ``last``,
    at most the last that many bytes of each. A log that is not a regular file of the job's account is
    not read (``refused`` says so)."""
    job = get_job(session=session, compute=compute, actor=actor, job_id=job_id)
    owner = _owner(job)
    out, out_at, out_refused = _tail(Path(job.workdir) / "stdout.log", max(0, stdout_offset), owner, last)
    err, err_at, err_refused = _tail(Path(job.workdir) / "stderr.log", max(0, stderr_offset), owner, last)
    return JobLogs(job_id=job.job_id, state=job.state, stdout=out, stderr=err, stdout_offset=out_at,
                   stderr_offset=err_at, refused=[r for r in (out_refused, err_refused) if r])


def job_files(*, session: Session, compute: Compute, actor: Actor, job_id: str, path: str = "",
              limit: int | None = None) -> JobFiles:
    """The folder ``path`` of the job's directory (workspace.py: no link followed, only the job's own files),
    at most compute.max_listed_files entries (or ``limit``, if fewer)."""
    job = get_job(session=session, compute=compute, actor=actor, job_id=job_id, refresh=False)
    most = compute.settings.compute.max_listed_files
    found = workspace.list_dir(Path(job.workdir), path, owner=_owner(job), limit=min(limit or most, most))
    entries = [JobFileOut(name=e.name, path=e.path, kind=e.kind, size=e.size, modified=e.modified)
               for e in found.entries]
    return JobFiles(job_id=job.job_id, path=found.path, entries=entries, truncated=found.truncated,
                    missing=found.missing)


def open_job_file(
    *, session: Session, compute: Compute, actor: Actor, job_id: str, path: str
) -> tuple[BinaryIO, int, str]:
    """A file of the job's directory opened to be read: (file, size, name); the caller closes it."""
    job = get_job(session=session, compute=compute, actor=actor, job_id=job_id, refresh=False)
    return workspace.open_file(Path(job.workdir), path, owner=_owner(job))


def job_out(job: Job, user_email: str | None = None) -> JobOut:
    return JobOut(
        job_id=job.job_id, id=job.id, scheduler=job.scheduler, cluster=job.cluster, project=job.project.name,
        user=user_email, name=job.name, partition=job.partition, account=job.account, run_as=job.run_as,
        nodes=job.nodes, gpus_per_node=job.gpus_per_node, gpus=job.nodes * job.gpus_per_node,
        charged_gpus=job.charged_gpus, time_limit_min=job.time_limit_min, template=job.template, state=job.state,
        reason=job.reason, exit_code=job.exit_code, submitted_at=job.submitted_at, started_at=job.started_at,
        ended_at=job.ended_at, accounted=job.accounted_at is not None, workdir=job.workdir,
        inputs=[JobInput(**item) for item in job.inputs or []],
    )


def emails(session: Session, jobs: Iterable[Job]) -> dict[str, str]:
    ids = {j.user_id for j in jobs if j.user_id}
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())
