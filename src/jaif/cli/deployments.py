"""deployment commands: models that jaif runs itself, as jobs (docs/deployments.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from jaif.cli.common import JsonFlag, context, out
from jaif.compute.backend import make_compute
from jaif.deployments import service
from jaif.deployments.schemas import DeploymentOut

deployment_app = typer.Typer(help="Model deployments: replicas that jaif runs as jobs.", no_args_is_help=True)


@deployment_app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    model: Annotated[str, typer.Option(help="Weights path, or a built-in or catalogue model (smollm2-135m-instruct).")],
    engine: Annotated[str, typer.Option(help="llama-cpp, vllm or command.")],
    partition: Annotated[str, typer.Option(help="The partition the replicas run on.")],
    project: Annotated[str, typer.Option(help="The project whose GPU-hour allocation pays for the replicas.")],
    gpus_per_replica: Annotated[int, typer.Option(help="GPUs of each replica (on one node).")] = 0,
    min_replicas: Annotated[int, typer.Option(help="Replicas kept running at least.")] = 1,
    max_replicas: Annotated[int, typer.Option(help="Replicas at most.")] = 1,
    target_inflight: Annotated[int, typer.Option(help="Requests in flight per replica the autoscaler aims at.")] = 4,
    idle_minutes: Annotated[float, typer.Option(
        help="Minutes without requests before scaling to zero (with --min-replicas 0); fractions allowed.")] = 30,
    walltime: Annotated[int, typer.Option(help="Each replica's time limit in minutes.")] = 60,
    command: Annotated[str | None, typer.Option(
        help="The command engine's command line: {port} (required), {host}, {model}, {name}, {gpus}, {api_key}; "
             "it must make the server require the replica's key ($JAIF_REPLICA_KEY, or {api_key})."
    )] = None,
    alias: Annotated[list[str] | None, typer.Option(help="An alias clients may use (repeatable).")] = None,
) -> None:
    """Deploy a model: jaif keeps its replicas running as jobs of PROJECT and routes NAME to them."""
    c = context(ctx)
    with c.session() as session:
        deployment = service.create_deployment(
            session=session, compute=make_compute(c.settings), name=name, model=model, engine=engine,
            partition=partition, project=project, gpus_per_replica=gpus_per_replica, min_replicas=min_replicas,
            max_replicas=max_replicas, target_inflight=target_inflight, idle_minutes=idle_minutes,
            walltime_minutes=walltime, command=command, aliases=alias or [],
        )
        starts = ("the first request starts one (scaled to zero when idle)" if deployment.min_replicas == 0
                  else "a running `jaif serve` starts them")
        out.print(f"created deployment {deployment.name}: {deployment.min_replicas} to {deployment.max_replicas} "
                  f"{deployment.engine} replicas on {deployment.partition}; {starts}")


def _table(items: list[DeploymentOut]) -> Table:
    table = Table("name", "engine", "model", "state", "replicas", "min", "max", "project")
    for d in items:
        replicas = "\n".join(f"{r.state} job {r.job_id}" + (f" {r.node}:{r.port}" if r.port else "")
                             + (f" ({r.reason})" if r.reason else "") for r in d.replicas)
        table.add_row(d.name, d.engine, d.model, d.state, replicas or "-", str(d.min_replicas),
                      str(d.max_replicas), d.project)
    return table


@deployment_app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Deployments and their replicas (state, job, where they listen)."""
    with context(ctx).session() as session:
        items = [service.deployment_out(session, d) for d in service.list_deployments(session=session)]
    if as_json:
        print(json.dumps([d.model_dump(mode="json") for d in items]))
        return
    out.print(_table(items))


@deployment_app.command("show")
def show(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """One deployment and its replicas."""
    with context(ctx).session() as session:
        item = service.deployment_out(session, service.get_deployment(session=session, name=name))
    if as_json:
        print(item.model_dump_json())
        return
    out.print(_table([item]))
    st = item.status
    out.print(f"status: {st.state}" + (f", ready in about {st.estimated_ready_s:.0f} s" if st.estimated_ready_s else "")
              + (f" ({st.reason})" if st.reason else "")
              + (f"; last request {item.last_request_at:%Y-%m-%d %H:%M:%S} UTC" if item.last_request_at else ""))
    if item.events:
        out.print("latest decisions:")
        for e in item.events:
            out.print(f"  {e.at:%Y-%m-%d %H:%M:%S} {e.kind}: {e.message}", markup=False, highlight=False)


@deployment_app.command("scale")
def scale(
    ctx: typer.Context,
    name: str,
    min_: Annotated[int | None, typer.Option("--min", help="Replicas kept running at least.")] = None,
    max_: Annotated[int | None, typer.Option("--max", help="Replicas at most.")] = None,
) -> None:
    """Change the minimum and maximum replicas; the server's controller follows within seconds."""
    with context(ctx).session() as session:
        d = service.scale_deployment(session=session, name=name, min_replicas=min_, max_replicas=max_)
        out.print(f"{d.name}: {d.min_replicas} to {d.max_replicas} replicas")


@deployment_app.command("delete")
def delete(ctx: typer.Context, name: str) -> None:
    """Delete a deployment: its replicas leave the routing, drain, and are stopped; then it goes."""
    with context(ctx).session() as session:
        d = service.delete_deployment(session=session, name=name)
        if d is None:
            out.print(f"deleted deployment {name}")
        else:
            out.print(f"deployment {name}: {len(service.live(d))} replica(s) draining; it goes once they have ended")


def register(app: typer.Typer) -> None:
    app.add_typer(deployment_app, name="deployment")
