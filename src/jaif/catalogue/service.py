"""The catalogue of domain solutions: model cards, optionally linked to a gateway model.

Operators create, edit and publish solutions. Everyone signed in sees the published ones; an
unpublished solution does not exist for anyone but operators (NotFound). A solution links to a
gateway model by name or alias; the link shows the model's aliases and whether it is served.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, object_session, selectinload

from jaif.access.schemas import Actor
from jaif.catalogue import schemas
from jaif.catalogue.builtin import BUILTIN_SOLUTIONS
from jaif.catalogue.models import Solution
from jaif.db.base import contains_pattern
from jaif.deployments import service as deployments
from jaif.errors import Conflict, Forbidden, InvalidRequest, NotFound
from jaif.inference import service as inference
from jaif.inference.models import Model

_SLUG = re.compile(schemas.SLUG_PATTERN)
_LIMITS = {
    "name": schemas.NAME_MAX,
    "summary": schemas.TEXT_MAX,
    "domain": schemas.DOMAIN_MAX,
    "licence": schemas.LICENCE_MAX,
    "intended_use": schemas.TEXT_MAX,
    "limitations": schemas.TEXT_MAX,
    "training_data": schemas.TEXT_MAX,
}
EDITABLE = frozenset({*_LIMITS, "languages", "model", "is_published"})
_ONE_LINE = frozenset({"name", "domain", "licence"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # line breaks and tabs are fine in a text
_ONE_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _require_operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise Forbidden("only operators may change the catalogue")


def _text(value: Any, *, param: str, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{param} must be text", param=param)
    value = value.strip()
    if required and not value:
        raise InvalidRequest(f"{param} must not be empty", param=param)
    if len(value) > _LIMITS[param]:
        raise InvalidRequest(f"{param} must be at most {_LIMITS[param]} characters", param=param)
    if (_ONE_LINE_CONTROL if param in _ONE_LINE else _CONTROL).search(value):
        line = "one line of text " if param in _ONE_LINE else ""
        raise InvalidRequest(f"{param} must be {line}without control characters", param=param)
    return value


def _languages(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for raw in values:
        language = raw.strip() if isinstance(raw, str) else ""
        if not language or len(language) > schemas.LANGUAGE_MAX or _ONE_LINE_CONTROL.search(language):
            raise InvalidRequest(f"each language must be 1 to {schemas.LANGUAGE_MAX} characters", param="languages")
        seen.setdefault(language, None)
    if len(seen) > schemas.LANGUAGES_MAX:
        raise InvalidRequest(f"at most {schemas.LANGUAGES_MAX} languages", param="languages")
    return list(seen)


def _resolve_model(session: Session, name: str | None) -> Model | None:
    """The gateway model called ``name`` or aliased so; None for no link."""
    if name is None or not name.strip():
        return None
    name = name.strip()
    for model in inference.list_models(session=session):
        if model.name == name or any(a.alias == name for a in model.aliases):
            return model
    raise InvalidRequest(f"the gateway has no model or alias named {name!r}; see `jaif model list`", param="model")


def _linked(model: Model | None) -> schemas.LinkedModel | None:
    if model is None:
        return None
    session = object_session(model)
    deployed = deployments.status_of_model(session, model.id) if session is not None else None
    running = any(r.is_active for r in model.replicas)
    return schemas.LinkedModel(
        name=model.name,
        kind=model.kind,
        context_length=model.context_length,
        aliases=sorted(a.alias for a in model.aliases),
        served=model.is_active and (running or (deployed is not None and deployed.state != "unavailable")),
        state=deployed.state if deployed is not None else None,
        estimated_ready_s=deployed.estimated_ready_s if deployed is not None else None,
    )


def _view(solution: Solution) -> schemas.Solution:
    return schemas.Solution(
        id=solution.id,
        slug=solution.slug,
        name=solution.name,
        summary=solution.summary,
        domain=solution.domain,
        licence=solution.licence,
        intended_use=solution.intended_use,
        limitations=solution.limitations,
        languages=list(solution.languages or []),
        training_data=solution.training_data,
        model=_linked(solution.model),
        is_published=solution.is_published,
        created_at=solution.created_at,
    )


def _query():
    return select(Solution).options(
        selectinload(Solution.model).selectinload(Model.aliases),
        selectinload(Solution.model).selectinload(Model.replicas),
    )


def _load(session: Session, actor: Actor, slug: str) -> Solution:
    solution = session.scalar(_query().where(Solution.slug == slug)) if _SLUG.match(slug or "") else None
    if solution is None or not (solution.is_published or actor.is_operator):
        raise NotFound(f"no solution {slug!r} in the catalogue", param="slug")
    return solution


def create_solution(
    *,
    session: Session,
    actor: Actor,
    slug: str,
    name: str,
    summary: str = "",
    domain: str = "",
    licence: str = "",
    intended_use: str = "",
    limitations: str = "",
    languages: Iterable[str] = (),
    training_data: str = "",
    model: str | None = None,
    is_published: bool = False,
) -> schemas.Solution:
    _require_operator(actor)
    slug = slug.strip() if isinstance(slug, str) else ""
    if not _SLUG.match(slug) or len(slug) > schemas.SLUG_MAX:
        raise InvalidRequest(
            "slug must be lower-case letters and digits in words joined by '-', e.g. med-qa", param="slug"
        )
    if session.scalar(select(Solution.id).where(Solution.slug == slug)):
        raise Conflict(f"a solution {slug!r} exists already", param="slug")
    card = {
        "summary": summary,
        "domain": domain,
        "licence": licence,
        "intended_use": intended_use,
        "limitations": limitations,
        "training_data": training_data,
    }
    solution = Solution(
        slug=slug,
        name=_text(name, param="name", required=True),
        languages=_languages(languages),
        is_published=bool(is_published),
        **{field: _text(value, param=field) for field, value in card.items()},
    )
    solution.model = _resolve_model(session, model)
    session.add(solution)
    session.flush()
    return _view(solution)


def update_solution(*, session: Session, actor: Actor, slug: str, changes: Mapping[str, Any]) -> schemas.Solution:
    """Change the fields named in ``changes``; ``{"model": None}`` unlinks the gateway model."""
    _require_operator(actor)
    solution = _load(session, actor, slug)
    for field, value in changes.items():
        if field not in EDITABLE:
            raise InvalidRequest(f"{field!r} cannot be changed", param=field)
        if field == "model":
            solution.model = _resolve_model(session, value)
        elif field == "languages":
            solution.languages = _languages(value or ())
        elif field == "is_published":
            if not isinstance(value, bool):
                raise InvalidRequest("is_published must be true or false", param=field)
            solution.is_published = value
        elif value is None:
            raise InvalidRequest(f"{field} must be text, not null", param=field)
        else:
            setattr(solution, field, _text(value, param=field, required=field == "name"))
    session.flush()
    return _view(solution)


def publish(*, session: Session, actor: Actor, slug: str, published: bool = True) -> schemas.Solution:
    return update_solution(session=session, actor=actor, slug=slug, changes={"is_published": published})


def list_solutions(
    *,
    session: Session,
    actor: Actor,
    domain: str | None = None,
    language: str | None = None,
    q: str | None = None,
    include_unpublished: bool = False,
) -> list[schemas.Solution]:
    """Published solutions by name; operators may ask for unpublished ones too. ``q`` searches name,
    summary and intended use; ``language`` filters case-insensitively."""
    query = _query().order_by(Solution.name, Solution.slug)
    if not (include_unpublished and actor.is_operator):
        query = query.where(Solution.is_published.is_(True))
    for value, param in ((domain, "domain"), (q, "q"), (language, "language")):
        if value and "\x00" in value:
            raise InvalidRequest(f"{param} must not contain NUL characters", param=param)
    if domain:
        query = query.where(func.lower(Solution.domain) == domain.strip().lower())
    if q and q.strip():
        pattern = contains_pattern(q, param="q")
        query = query.where(
            or_(
                *(
                    func.lower(c).like(pattern, escape="\\")
                    for c in (Solution.name, Solution.summary, Solution.intended_use)
                )
            )
        )
    found = [_view(s) for s in session.scalars(query)]
    if language and language.strip():
        wanted = language.strip().lower()
        found = [s for s in found if wanted in (lang.lower() for lang in s.languages)]
    return found


def list_domains(*, session: Session, actor: Actor) -> list[str]:
    query = select(Solution.domain).where(Solution.domain != "").distinct().order_by(Solution.domain)
    if not actor.is_operator:
        query = query.where(Solution.is_published.is_(True))
    return list(session.scalars(query))


def get_solution(*, session: Session, actor: Actor, slug: str) -> schemas.Solution:
    return _view(_load(session, actor, slug))


def seed_builtin_solutions(*, session: Session) -> list[str]:
    """Add the catalogue entries of the built-in models that are missing; returns their slugs.

    Entries that exist stay as operators left them; the model link is made only where that model
    is registered."""
    created = []
    existing = set(session.scalars(select(Solution.slug)))
    registered = {m.name for m in inference.list_models(session=session)}
    for entry in BUILTIN_SOLUTIONS:
        if entry["slug"] in existing:
            continue
        fields = dict(entry)
        if fields["model"] not in registered:
            fields["model"] = None
        session.add(solution := Solution(**{k: v for k, v in fields.items() if k != "model"}, is_published=True))
        solution.model = _resolve_model(session, fields["model"])
        created.append(entry["slug"])
    session.flush()
    return created
