"""A deployment's report: the GPU-hours and energy its replica jobs were charged (the accounting import's
job records, compute/reports.py) against the tokens served under its name (the usage ledger), and the
energy per 1,000 tokens; as an object, lines of text or CSV (``jaif report --deployment``, and
``GET /api/v1/deployments/{name}/report`` for operators)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from jaif.compute import reports as compute_reports
from jaif.deployments import service
from jaif.deployments.schemas import DeploymentReport
from jaif.errors import InvalidRequest
from jaif.metering import service as metering

DIGITS = 6  # significant digits of the report's real numbers: no float noise, any scale


def _round(value: float) -> float:
    return float(f"{value:.{DIGITS}g}")


def _utc(value: datetime | None, param: str) -> datetime | None:
    """In UTC (a time without a zone is UTC's); refused when UTC has no such time (year 1 or 9999's edge)."""
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise InvalidRequest(f"{param} {value.isoformat()} is out of range", param=param) from None


def report(
    *, session: Session, name: str, since: datetime | None = None, until: datetime | None = None
) -> DeploymentReport:
    """The deployment's use in [since, until): jobs that ended and requests made in it. Tokens are counted
    from the deployment's creation at the earliest (a model of the same name before it is not its)."""
    since, until = _utc(since, "since"), _utc(until, "until")
    deployment = service.get_deployment(session=session, name=name)
    start = deployment.created_at if since is None else max(since, deployment.created_at)
    if until is not None and until <= start:
        raise InvalidRequest("--until must be after --since (and after the deployment was created)", param="until")
    refs = [r.job_ref for r in deployment.replicas if r.job_ref]
    charged, uncharged = compute_reports.jobs_usage(session=session, job_refs=refs, since=start, until=until)
    served = metering.model_usage(session=session, model=deployment.name, since=start, until=until)
    tokens = served.prompt_tokens + served.completion_tokens
    energy = _round(charged.energy_kwh)
    return DeploymentReport(
        deployment=deployment.name, model=deployment.model, project=deployment.project.name, since=start,
        until=until, replicas=charged.jobs, replicas_uncharged=uncharged, gpu_hours=_round(charged.gpu_hours),
        energy_kwh=energy, energy_measured_kwh=_round(charged.energy_measured_kwh),
        energy_modelled_kwh=_round(charged.energy_modelled_kwh), co2_kg=_round(charged.co2_kg),
        requests=served.requests, prompt_tokens=served.prompt_tokens, completion_tokens=served.completion_tokens,
        tokens=tokens, kwh_per_1k_tokens=_round(charged.energy_kwh * 1000 / tokens) if tokens else None,
    )


def lines(r: DeploymentReport) -> list[str]:
    period = f"{r.since:%Y-%m-%d %H:%M} to " + (f"{r.until:%Y-%m-%d %H:%M}" if r.until else "now") + " UTC"
    per_1k = "n/a (no tokens served)" if r.kwh_per_1k_tokens is None else f"{r.kwh_per_1k_tokens:g} kWh"
    return [
        f"deployment {r.deployment} ({r.model}; project {r.project}), {period}",
        f"  replicas:  {r.replicas} charged"
        + (f", {r.replicas_uncharged} not yet (running, or waiting for the accounting import)"
           if r.replicas_uncharged else ""),
        f"  GPU-hours: {r.gpu_hours:g}",
        f"  energy:    {r.energy_kwh:g} kWh ({r.energy_measured_kwh:g} measured by Slurm, "
        f"{r.energy_modelled_kwh:g} from the power model); CO2 {r.co2_kg:g} kg",
        f"  tokens:    {r.tokens} ({r.prompt_tokens} prompt + {r.completion_tokens} completion, "
        f"{r.requests} requests)",
        f"  per 1,000 tokens: {per_1k}",
    ]


def to_csv(r: DeploymentReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    fields = ["deployment", "model", "project", "since", "until", "replicas", "replicas_uncharged", "gpu_hours",
              "energy_kwh", "co2_kg", "requests", "prompt_tokens", "completion_tokens", "tokens",
              "kwh_per_1k_tokens"]
    values = r.model_dump(mode="json")
    writer.writerow(fields)
    writer.writerow(["" if values[f] is None else values[f] for f in fields])
    return buffer.getvalue()
