"""model commands."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from jaif.cli.common import context, out
from jaif.inference import service

TTFB_HELP = "Seconds until the first byte of an answer (default: inference.ttfb_timeout_s)."
IDLE_HELP = "Seconds between a stream's events (default: inference.idle_timeout_s)."
REQUEST_HELP = "Seconds for the whole exchange with a replica (default: inference.request_timeout_s)."
RESPONSES_HELP = ("How POST /v1/responses reaches a chat model: translate (onto chat completions) or native "
                  "(passed through: the upstream serves /v1/responses itself, as vLLM does).")

model_app = typer.Typer(help="Served models, aliases and replicas.", no_args_is_help=True)


@model_app.command("add")
def model_add(
    ctx: typer.Context,
    name: str,
    upstream: Annotated[list[str], typer.Option(help="Replica base URL ending in /v1 (repeatable).")],
    alias: Annotated[list[str] | None, typer.Option(help="An alias clients may use (repeatable).")] = None,
    kind: Annotated[str, typer.Option(help="chat, embedding or rerank")] = "chat",
    context_length: Annotated[int, typer.Option(help="Context length in tokens.")] = 4096,
    upstream_model: Annotated[str | None, typer.Option(help="Model id the upstream knows, if not NAME.")] = None,
    upstream_key: Annotated[str | None, typer.Option(help="Bearer key to send upstream.")] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="Path of the model's tokenizer.json, for upstreams that report no usage.")
    ] = None,
    licence: Annotated[str, typer.Option(help="Licence of the model.")] = "",
    description: Annotated[str, typer.Option(help="One line on what the model is for.")] = "",
    ttfb_timeout: Annotated[float | None, typer.Option(help=TTFB_HELP)] = None,
    idle_timeout: Annotated[float | None, typer.Option(help=IDLE_HELP)] = None,
    request_timeout: Annotated[float | None, typer.Option(help=REQUEST_HELP)] = None,
    responses_api: Annotated[str, typer.Option(help=RESPONSES_HELP)] = "translate",
) -> None:
    """Serve a model from one or more OpenAI-compatible upstreams."""
    with context(ctx).session() as session:
        model = service.add_model(
            session=session,
            name=name,
            upstreams=upstream,
            aliases=alias or [],
            kind=kind,
            context_length=context_length,
            upstream_model=upstream_model,
            upstream_key=upstream_key,
            tokenizer=tokenizer,
            licence=licence,
            description=description,
            ttfb_timeout_s=ttfb_timeout,
            idle_timeout_s=idle_timeout,
            request_timeout_s=request_timeout,
            responses_api=responses_api,
        )
        out.print(f"added {model.kind} model {model.name} with {len(model.replicas)} replica(s)")


@model_app.command("update")
def model_update(
    ctx: typer.Context,
    name: str,
    ttfb_timeout: Annotated[float | None, typer.Option(help=TTFB_HELP + " 0: the setting again.")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help=IDLE_HELP + " 0: the setting again.")] = None,
    request_timeout: Annotated[float | None, typer.Option(help=REQUEST_HELP + " 0: the setting again.")] = None,
    responses_api: Annotated[str | None, typer.Option(help=RESPONSES_HELP)] = None,
) -> None:
    """Change a model's upstream time limits or its Responses API (gateways pick the change up within
    inference.registry_refresh_s)."""
    with context(ctx).session() as session:
        model = service.update_model(
            session=session,
            name=name,
            ttfb_timeout_s=ttfb_timeout,
            idle_timeout_s=idle_timeout,
            request_timeout_s=request_timeout,
            responses_api=responses_api,
        )
        out.print(f"{model.name}: {_timeouts(model)}; responses api: {model.responses_api}")


@model_app.command("list")
def model_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """List models with aliases and replicas."""
    with context(ctx).session() as session:
        rows: list[dict[str, Any]] = [
            {
                "name": m.name,
                "kind": m.kind,
                "context_length": m.context_length,
                "aliases": sorted(a.alias for a in m.aliases),
                "replicas": [service.display_url(r.url) for r in m.replicas],  # without credentials
                "active": m.is_active,
                "responses_api": m.responses_api,
                "timeouts": {
                    "ttfb_s": m.ttfb_timeout_s,
                    "idle_s": m.idle_timeout_s,
                    "request_s": m.request_timeout_s,
                },  # null: the inference.* setting
            }
            for m in service.list_models(session=session)
        ]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("name", "kind", "context", "aliases", "replicas")
    for r in rows:
        table.add_row(r["name"], r["kind"], str(r["context_length"]), ", ".join(r["aliases"]), "\n".join(r["replicas"]))
    out.print(table)


@model_app.command("alias")
def model_alias(ctx: typer.Context, alias: str, model: str) -> None:
    """Point ALIAS at MODEL (creates or re-points it; clients keep working)."""
    with context(ctx).session() as session:
        service.set_alias(session=session, alias=alias, model_name=model)
        out.print(f"{alias} -> {model}")


@model_app.command("add-replica")
def model_add_replica(ctx: typer.Context, model: str, upstream: str) -> None:
    """Add a replica URL to a model."""
    with context(ctx).session() as session:
        service.add_replica(session=session, model_name=model, url=upstream)
        out.print(f"{model}: added replica {service.display_url(upstream)}")


@model_app.command("remove-replica")
def model_remove_replica(ctx: typer.Context, model: str, upstream: str) -> None:
    """Remove a replica from a model: its URL, or the URL as `model list` shows it (credentials as ***)."""
    with context(ctx).session() as session:
        service.remove_replica(session=session, model_name=model, url=upstream)
        out.print(f"{model}: removed replica {service.display_url(upstream)}")


def _timeouts(model: Any) -> str:
    def show(value: float | None) -> str:
        return f"{value:g} s" if value is not None else "the setting"

    return (
        f"first byte {show(model.ttfb_timeout_s)}, idle {show(model.idle_timeout_s)}, "
        f"request {show(model.request_timeout_s)}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
