"""/api/v1/jobs (submit, list, show, cancel, logs, the files of its directory), /api/v1/partitions,
/api/v1/compute/report and the operators' /api/v1/slurm/sync."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.responses import StreamingResponse

from jaif.compute import reports, sync
from jaif.compute import service as jobs
from jaif.compute.deps import ComputeDep, download
from jaif.compute.schemas import ComputeReport, JobFiles, JobLogs, JobOut, JobSubmit, PartitionOut
from jaif.identity.deps import CurrentActor, Operator
from jaif.web import api_paging
from jaif.web.deps import DB

router = APIRouter(tags=["compute"])




@router.post("/api/v1/jobs", status_code=201, response_model=JobOut, summary="Submit a job to a project")
def submit(body: JobSubmit, session: DB, actor: CurrentActor, compute: ComputeDep) -> JobOut:
    """A template with parameters, or a raw batch script. Refused (nothing submitted) for an unknown
    partition, resources beyond it, a script that is not text, or an allocation that is missing,
    expired, exhausted or too small for time limit x GPUs."""
    job = jobs.submit_job(
        session=session, compute=compute, actor=actor, project_name=body.project, partition=body.partition,
        gpus=body.gpus, nodes=body.nodes, time_min=body.time, template=body.template, params=body.params,
        script=body.script, name=body.name, inputs=body.inputs,
    )
    return jobs.job_out(job, actor.email if actor.user_id else None)


@router.get("/api/v1/jobs", response_model=list[JobOut], summary="Jobs of the projects you are a member of",
            responses=api_paging.PAGED)
def list_jobs(
    request: Request,
    response: Response,
    session: DB,
    actor: CurrentActor,
    compute: ComputeDep,
    page: api_paging.Paging,
    project: Annotated[str | None, Query(description="A project's name.")] = None,
    state: Annotated[str | None, Query(description="pending, running, completed, failed, cancelled or timeout")] = None,
) -> list[JobOut]:
    """Newest first, a page at a time (``limit``, ``offset``; the total in ``X-Total-Count``)."""
    found = jobs.list_jobs(session=session, compute=compute, actor=actor, project_name=project, state=state,
                           limit=page.limit, offset=page.offset)
    total = jobs.count_jobs(session=session, compute=compute, actor=actor, project_name=project, state=state)
    api_paging.send(request, response, page, total)
    emails = jobs.emails(session, found)
    return [jobs.job_out(j, emails.get(j.user_id or "")) for j in found]


@router.get("/api/v1/jobs/{job_id}", response_model=JobOut, summary="A job, by the scheduler's id")
def show(job_id: str, session: DB, actor: CurrentActor, compute: ComputeDep) -> JobOut:
    job = jobs.get_job(session=session, compute=compute, actor=actor, job_id=job_id)
    return jobs.job_out(job, jobs.emails(session, [job]).get(job.user_id or ""))


@router.post("/api/v1/jobs/{job_id}/cancel", response_model=JobOut, summary="Cancel a job")
def cancel(job_id: str, session: DB, actor: CurrentActor, compute: ComputeDep) -> JobOut:
    job = jobs.cancel_job(session=session, compute=compute, actor=actor, job_id=job_id)
    return jobs.job_out(job, jobs.emails(session, [job]).get(job.user_id or ""))


@router.get("/api/v1/jobs/{job_id}/logs", response_model=JobLogs, summary="A job's stdout and stderr")
def logs(
    job_id: str,
    session: DB,
    actor: CurrentActor,
    compute: ComputeDep,
    stdout_offset: Annotated[int, Query(ge=0)] = 0,
    stderr_offset: Annotated[int, Query(ge=0)] = 0,
) -> JobLogs:
    """From the offsets on; pass back the offsets of the answer to follow a running job."""
    return jobs.job_logs(session=session, compute=compute, actor=actor, job_id=job_id,
                         stdout_offset=stdout_offset, stderr_offset=stderr_offset)


JobPath = Annotated[str, Query(max_length=4096, description="Relative to the job's directory; names joined by '/'.")]


@router.get("/api/v1/jobs/{job_id}/files", response_model=JobFiles, summary="A folder of a job's directory")
def files(job_id: str, session: DB, actor: CurrentActor, compute: ComputeDep, path: JobPath = "") -> JobFiles:
    """Its entries, folders first; symbolic links are listed, never followed; at most compute.max_listed_files."""
    return jobs.job_files(session=session, compute=compute, actor=actor, job_id=job_id, path=path)


@router.get("/api/v1/jobs/{job_id}/files/content", summary="A file of a job's directory",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"}})
def file_content(job_id: str, session: DB, actor: CurrentActor, compute: ComputeDep,
                 path: JobPath) -> StreamingResponse:
    """A regular file of the job's own account, reached without a symbolic link; streamed."""
    opened = jobs.open_job_file(session=session, compute=compute, actor=actor, job_id=job_id, path=path)
    return download(*opened)


@router.get("/api/v1/partitions", response_model=list[PartitionOut], summary="The compute partitions")
def partitions(actor: CurrentActor, compute: ComputeDep) -> list[PartitionOut]:
    return [PartitionOut.model_validate(p) for p in compute.partitions().values()]


@router.get("/api/v1/compute/report", response_model=ComputeReport,
            summary="GPU-hours, energy, CO2 and tokens of a project, organisation or call")
def report(
    request: Request,
    session: DB,
    actor: CurrentActor,
    project: str | None = None,
    org: str | None = None,
    call: str | None = None,
) -> ComputeReport:
    return reports.report(session=session, settings=request.app.state.settings, actor=actor,
                          project_name=project, org_name=org, call=call)


@router.post("/api/v1/slurm/sync", summary="Reconcile Slurm accounts with allocations (operators)")
def slurm_sync(session: DB, actor: Operator, compute: ComputeDep, dry_run: bool = False) -> dict:
    return sync.sync(session=session, compute=compute, dry_run=dry_run).as_dict()
