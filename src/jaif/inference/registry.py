"""The gateway's in-memory view of the model registry, refreshed from the database in the background.

Backends are kept across refreshes while their URL stays, so pooled connections and health state
survive an operator adding a replica or re-pointing an alias. A change to what a backend is made with
(the upstream key or model id, the model's time limits) makes new backends; the old ones are retired.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from jaif.errors import NotFound
from jaif.inference import service
from jaif.inference.backends.base import InferenceBackend
from jaif.inference.backends.deadline import Timeouts
from jaif.inference.routing import Affinity, ReplicaSet, ReplicaState

BackendFactory = Callable[..., InferenceBackend]


@dataclass
class ServedModel:
    id: str
    name: str
    kind: str
    context_length: int
    owned_by: str
    created: int
    upstream_model: str | None
    tokenizer: str | None
    replicas: ReplicaSet
    timeouts: Timeouts = Timeouts()
    # A deployment's status (deployments/service.py ``status``), None for other models. A request for a
    # deployment that finds no replica is held for one (inference/gateway.py).
    deployment: dict | None = None
    # POST /v1/responses: "translate" onto chat completions, or "native" (passed through to the upstream).
    responses_api: str = "translate"


@dataclass(frozen=True)
class _Row:
    """One model as read from the database, detached from the session."""

    id: str
    name: str
    kind: str
    context_length: int
    owned_by: str
    created: int
    upstream_model: str | None
    upstream_key: str | None
    tokenizer: str | None
    urls: tuple[str, ...]
    aliases: tuple[str, ...]
    timeouts: tuple[float | None, float | None, float | None]  # the model's own; None: the setting
    responses_api: str = "translate"


class ModelRegistry:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        backend_factory: BackendFactory,
        *,
        cooldown_s: float,
        builtin: bool = True,
        timeouts: Timeouts = Timeouts(),
        standing: Callable[[Session], Mapping[str, dict]] | None = None,
        affinity: Affinity | None = None,
    ) -> None:
        """``timeouts``: the inference.*_timeout_s settings, for models that set none of their own;
        ``affinity``: prefix affinity's settings, None to route without it (routing.py)."""
        self._session_factory = session_factory
        self._backend_factory = backend_factory
        self._cooldown_s = cooldown_s
        self._affinity = affinity
        # With the built-in models switched off, their replicas are left out (so are models without any).
        self._builtin = builtin
        self._timeouts = timeouts
        # Models served even while they have no replica (deployments), by id, with their status: their
        # requests are held for a replica (deployments/service.py ``served_models``).
        self._standing = standing
        self.models: dict[str, ServedModel] = {}
        self.aliases: dict[str, str] = {}
        self._states: dict[tuple, ReplicaState] = {}

    def resolve(self, name: str) -> ServedModel:
        model = self.models.get(name) or self.models.get(self.aliases.get(name, ""))
        if model is None:
            raise NotFound(f"The model `{name}` does not exist.", param="model", code="model_not_found")
        return model

    def load(self) -> list[InferenceBackend]:
        """Read the registry (blocking; call in a thread). Returns backends that went away, to close."""
        with self._session_factory() as session:
            standing = dict(self._standing(session)) if self._standing is not None else {}
            rows = [
                _Row(m.id, m.name, m.kind, m.context_length, m.owned_by, int(m.created_at.timestamp()),
                     m.upstream_model, m.upstream_key, m.tokenizer, urls, tuple(a.alias for a in m.aliases),
                     (m.ttfb_timeout_s, m.idle_timeout_s, m.request_timeout_s), m.responses_api)
                for m in service.list_models(session=session, active_only=True)
                if (urls := tuple(r.url for r in m.replicas if r.is_active and self._serves(r.url)))
                or m.id in standing
            ]
        return self._apply(rows, standing)

    def _serves(self, url: str) -> bool:
        return self._builtin or not url.startswith(service.BUILTIN_SCHEME)

    def _apply(self, rows: list[_Row], standing: Mapping[str, dict] | None = None) -> list[InferenceBackend]:
        models: dict[str, ServedModel] = {}
        aliases: dict[str, str] = {}
        states: dict[tuple, ReplicaState] = {}
        for row in rows:
            replica_states = []
            ttfb, idle, total = row.timeouts
            default = self._timeouts
            timeouts = Timeouts(ttfb or default.ttfb_s, idle or default.idle_s, total or default.total_s)
            for url in row.urls:
                key = (row.name, url, row.upstream_key, row.upstream_model, timeouts)
                state = self._states.get(key)
                if state is None:
                    backend = self._backend_factory(
                        url, name=row.name, kind=row.kind, api_key=row.upstream_key,
                        upstream_model=row.upstream_model or row.name, timeouts=timeouts,
                    )
                    state = ReplicaState(backend)
                states[key] = state
                replica_states.append(state)
            previous = self.models.get(row.name)
            replica_set = (
                previous.replicas if previous else ReplicaSet([], cooldown_s=self._cooldown_s, affinity=self._affinity)
            )
            replica_set.replicas = replica_states
            models[row.name] = ServedModel(
                row.id, row.name, row.kind, row.context_length, row.owned_by, row.created, row.upstream_model,
                row.tokenizer, replica_set, timeouts, (standing or {}).get(row.id), row.responses_api,
            )
            for alias in row.aliases:
                aliases[alias] = row.name
        gone = [s.backend for k, s in self._states.items() if k not in states]
        self.models, self.aliases, self._states = models, aliases, states
        return gone

    def all_states(self) -> list[tuple[str, ReplicaState]]:
        return [(m.name, r) for m in self.models.values() for r in m.replicas.replicas]

    def backends(self) -> list[InferenceBackend]:
        return [s.backend for s in self._states.values()]
