"""The gateway's runtime: what create_app builds in its lifespan, and the background loops.

Nothing here runs at import. ``Runtime.start`` builds engine, registry, gateway and loops;
``Runtime.stop`` closes the meter (last usage flush, leases given back) and connections. Metering is
the Meter's (metering/meter.py): the runtime builds it, calls its ``tick`` and closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time

import jaif.db.models  # noqa: F401  (every mapper known before the first query: relationships span concepts)
from jaif.allocations import service as allocations
from jaif.batches.runner import BatchRunner
from jaif.compute import worker as compute_worker
from jaif.compute.backend import make_compute
from jaif.config import Settings
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.dependencies import (
    CHECK_INTERVAL_S,
    DATABASE,
    REDIS,
    DependencyHealth,
    check_database,
    check_redis,
    outage_of,
)
from jaif.deployments import service as deployments
from jaif.deployments.controller import Controller, HttpProber
from jaif.deployments.leader import Leadership
from jaif.files.store import FileStore
from jaif.inference.backends.base import InferenceBackend
from jaif.inference.backends.builtin import make_builtin, smollm2_file
from jaif.inference.backends.deadline import Timeouts
from jaif.inference.backends.openai_upstream import OpenAIUpstream, timeouts_from
from jaif.inference.gateway import Gateway
from jaif.inference.keys import KeyCache
from jaif.inference.registry import ModelRegistry
from jaif.inference.revocation import RevocationListener, announce_on_commit
from jaif.inference.routing import Affinity, ReplicaState
from jaif.inference.service import BUILTIN_SCHEME
from jaif.inference.tokenizers import TokenCounter
from jaif.metering.meter import Meter
from jaif.ops.metrics import GatewayMetrics

log = logging.getLogger(__name__)

ALLOCATION_WATCH_S = 5.0  # how often a server looks for allocation changes to push to Slurm


class Runtime:
    def __init__(self, settings: Settings, *, metered: bool = True) -> None:
        """``metered``: False only for bench/gateway.py's baseline (metering/meter.py)."""
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self.session_factory = make_session_factory(self.engine)
        inf = settings.inference
        self.metrics = GatewayMetrics(multiprocess_dir=settings.web.metrics_dir)
        # Whether the database and Redis answer; the log of their outages (jaif/dependencies.py).
        self.health = DependencyHealth(
            [DATABASE, REDIS] if settings.redis_url else [DATABASE], gauge=self.metrics.dependency_up
        )
        self.registry = ModelRegistry(
            self.session_factory,
            self._make_backend,
            cooldown_s=inf.cooldown_s,
            builtin=inf.builtin_models,
            timeouts=timeouts_from(inf),
            standing=deployments.served_models,  # served with no replica: its requests are held (a cold start)
            affinity=Affinity(inf.affinity_prefix_chars, inf.affinity_slack) if inf.affinity else None,
        )
        if inf.read_timeout_s is not None:
            log.warning(
                "inference.read_timeout_s is deprecated: it now sets inference.idle_timeout_s (%g s) unless that "
                "is set; see inference.ttfb_timeout_s and inference.request_timeout_s",
                inf.idle_timeout_s,
            )
        self.meter = Meter(
            self.session_factory,
            settings.metering,
            redis_url=settings.redis_url,
            pending=self.metrics.usage_pending,
            metered=metered,
            health=self.health,
        )
        self.keys = KeyCache(self.session_factory, ttl_s=inf.key_cache_s, stale_s=inf.key_stale_s, health=self.health)
        # A key revoked through this process (API, portal, a job's end) is refused here at once, and
        # by every other gateway process through Redis where it is configured (inference/revocation.py).
        announce_on_commit(self.session_factory, redis_url=settings.redis_url, local=self.keys.revoked)
        self.gateway = Gateway(
            registry=self.registry,
            keys=self.keys,
            meter=self.meter,
            metrics=self.metrics,
            tokens=TokenCounter(builtin_gguf=smollm2_file()),
            retries=inf.retries,
            max_messages=inf.max_messages,
            max_prompt_bytes=inf.max_prompt_bytes,
            hold_s=settings.deployments.cold_start_timeout_s,
            on_hold=self._held,
        )
        # This process's name in the deployments' load reports (deployments/models.py GatewayLoad).
        self.instance = f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._report_now = asyncio.Event()
        self._controller_wake = asyncio.Event()  # a request held here: the controller (if here) ticks now
        self._owners: dict[str, str] = {}  # replica URL -> its deployment's model (kept while it drains)
        self._tasks: list[asyncio.Task] = []
        self._allocation_fingerprint: tuple | None = None
        self._gauged: set[tuple[str, str]] = set()
        # Replicas an operator removed, closed once their last request has finished.
        self._retired: list[ReplicaState] = []
        self._refreshing = asyncio.Lock()  # the registry task and the deployments' controller both refresh
        self._leadership: Leadership | None = None
        # Batches (batches/runner.py): run here, through the gateway, when batches.enabled.
        self.batches: BatchRunner | None = None
        if settings.batches.enabled:
            self.batches = BatchRunner(
                session_factory=self.session_factory, gateway=self.gateway, store=FileStore(settings.files_dir),
                settings=settings.batches, max_line_bytes=inf.max_body_bytes,
            )  # fmt: skip

    def _make_backend(
        self, url: str, *, name: str, kind: str, api_key: str | None, upstream_model: str, timeouts: Timeouts
    ) -> InferenceBackend:
        inf = self.settings.inference
        if url.startswith(BUILTIN_SCHEME):
            return make_builtin(url, settings=inf)  # loads its model on first use, not here
        return OpenAIUpstream(url, api_key=api_key, settings=inf, model=upstream_model, kind=kind, timeouts=timeouts)

    async def start(self) -> None:
        await asyncio.to_thread(self.registry.load)
        self._tasks = [
            asyncio.create_task(self._every(self.meter.interval_s, self.meter.tick), name="metering"),
            asyncio.create_task(
                self._every(self.settings.inference.registry_refresh_s, self._refresh), name="registry"
            ),
            asyncio.create_task(self._every(self.settings.inference.health_interval_s, self._probe), name="health"),
            asyncio.create_task(self._every(allocations.SWEEP_INTERVAL_S, self._sweep), name="allocation-sweep"),
            asyncio.create_task(self._every(CHECK_INTERVAL_S, self._check_dependencies), name="dependencies"),
        ]
        if self.settings.redis_url:
            listener = RevocationListener(
                self.settings.redis_url,
                revoked=self.keys.revoked,
                resubscribed=self.keys.forget_all,
                health=self.health,
            )
            self._tasks.append(asyncio.create_task(listener.run(), name="key-revocations"))
        if self.settings.slurm.sync_interval_s > 0:  # job states, accounting import, Slurm sync (compute/worker.py)
            self._tasks.append(
                asyncio.create_task(self._every(self.settings.slurm.sync_interval_s, self._compute), name="compute")
            )
        # Every process reports its deployments' load; the controller (in one of them) sums the reports.
        self._tasks.append(asyncio.create_task(self._report_load(), name="deployment-load"))
        if self.settings.deployments.enabled:  # deployments' replicas (deployments/controller.py)
            self._leadership = Leadership(self.engine)  # one controller among the servers of a database
            controller = Controller(
                lambda: transaction(self.session_factory), make_compute(self.settings), self.settings.deployments,
                HttpProber(self.settings.deployments.probe_timeout_s), leads=self._leadership.held,
                on_tick=self.metrics.deployment_tick,
            )
            self._tasks.append(asyncio.create_task(self._run_controller(controller), name="deployments"))
        if self.batches is not None:
            self._tasks.append(
                asyncio.create_task(self._every(self.settings.batches.poll_s, self.batches.tick), name="batches")
            )
        if self.settings.scheduler == "slurm":
            # Slurm's limits follow every allocation change within seconds, not only at the next tick.
            self._tasks.append(
                asyncio.create_task(self._every(ALLOCATION_WATCH_S, self._allocations_changed), name="allocation-watch")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.batches is not None:  # lines under way finish (batches.drain_s); claims given back
            await self.batches.stop()
        if self._leadership is not None:  # another server takes the deployments' controller over at once
            await asyncio.to_thread(self._leadership.close)
        with contextlib.suppress(Exception):  # its in-flight requests are over: the controller stops counting them
            await asyncio.to_thread(self._forget_load)
        await self.meter.close()  # nothing queued is lost: the last flush, every lease given back
        for backend in self.registry.backends():
            await backend.aclose()
        await self._close_retired(everything=True)
        self.gateway.close()
        self.metrics.close()
        self.engine.dispose()

    async def _every(self, interval: float, job) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except Exception as exc:
                # An unreachable database or Redis is an outage, logged once by self.health, not a bug.
                if (dependency := outage_of(exc)) is not None:
                    self.health.failed(dependency, exc)
                else:
                    log.exception("background job %s failed; it runs again in %.1f s", job.__name__, interval)

    async def _check_dependencies(self) -> None:
        """Check each dependency that is down; the first answer ends its outage."""
        for dependency in self.health.down():
            try:
                if dependency == DATABASE:
                    await asyncio.to_thread(check_database, self.engine)
                elif dependency == REDIS and self.settings.redis_url:
                    await check_redis(self.settings.redis_url)
            except Exception as exc:
                if outage_of(exc) is None:
                    raise
                self.health.failed(dependency, exc)
            else:
                self.health.recovered(dependency)

    async def _sweep(self) -> None:
        """Expire ended allocations and re-derive token quotas from them (allocations/token_quota.py)."""

        def _run() -> None:
            with transaction(self.session_factory) as session:
                allocations.sweep(session=session)

        await asyncio.to_thread(_run)

    async def _allocations_changed(self) -> None:
        def check() -> bool:
            with transaction(self.session_factory) as session:
                now = allocations.fingerprint(session=session)
            changed = self._allocation_fingerprint is not None and now != self._allocation_fingerprint
            self._allocation_fingerprint = now
            return changed

        if await asyncio.to_thread(check):
            compute = make_compute(self.settings)
            await asyncio.to_thread(compute_worker.sync_accounts, lambda: transaction(self.session_factory), compute)

    async def _compute(self) -> None:
        compute = make_compute(self.settings)
        await asyncio.to_thread(compute_worker.tick, lambda: transaction(self.session_factory), compute)

    @property
    def runs_controller(self) -> bool:
        """Whether this process runs the deployments' controller now (deployments/leader.py)."""
        return self._leadership is not None and self._leadership.leading

    def _held(self) -> None:
        """A request started waiting for a deployment's replica: report it now, not at the next interval."""
        self._report_now.set()

    def load(self) -> dict:
        """This process's load on its deployments (deployments/models.py GatewayLoad), draining replicas
        (out of the routing, retired here until their last request ends) included."""
        load: dict[str, dict] = {}
        current: dict[str, str] = {}
        for model in self.registry.models.values():
            if model.deployment is None:
                continue
            replicas = model.replicas
            load[model.name] = {"inflight": {}, "held": replicas.held, "last": replicas.last_used or None}
            current.update((state.url, model.name) for state in replicas.replicas)
        retired = {state.url for state in self._retired}
        self._owners = {url: name for url, name in self._owners.items() if url in retired} | current
        for state in [s for _, s in self.registry.all_states()] + self._retired:
            owner = self._owners.get(state.url)
            if owner in load and state.outstanding:
                inflight = load[owner]["inflight"]
                inflight[state.url] = inflight.get(state.url, 0) + state.outstanding
        return load

    async def _report_load(self) -> None:
        """Report the load every deployments.report_interval_s (at once when a request starts to be held);
        while requests are held, re-read the replicas every deployments.hold_refresh_s, so that they go to
        a replica as soon as the controller has put it in the routing."""
        s = self.settings.deployments
        reported = 0.0
        while True:
            held = any(m.replicas.held for m in self.registry.models.values())
            wait = s.hold_refresh_s if held else s.report_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._report_now.wait(), timeout=wait)
            woken = self._report_now.is_set()
            self._report_now.clear()
            try:
                if held:
                    await self._refresh()
                load = self.load()
                if load and (woken or time.monotonic() - reported >= s.report_interval_s):
                    await asyncio.to_thread(self._write_load, load)
                    reported = time.monotonic()
                    if woken:
                        self._controller_wake.set()
            except Exception as exc:
                if (dependency := outage_of(exc)) is not None:
                    self.health.failed(dependency, exc)
                else:
                    log.exception("reporting the deployments' load failed; tried again in %.1f s", wait)

    def _write_load(self, load: dict) -> None:
        with transaction(self.session_factory) as session:
            deployments.report_load(session, instance=self.instance, load=load)

    def _forget_load(self) -> None:
        with transaction(self.session_factory) as session:
            deployments.forget_load(session, instance=self.instance)

    async def _run_controller(self, controller: Controller) -> None:
        """The controller's ticks: every deployments.interval_s, every deployments.starting_interval_s while a
        replica is on its way or requests are held (a cold start: readiness seen, and routed, sooner), and
        at once when this process starts to hold a request (its load report written first)."""
        s = self.settings.deployments
        while True:
            wait = min(s.interval_s, s.starting_interval_s) if controller.busy else s.interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._controller_wake.wait(), timeout=wait)
            self._controller_wake.clear()
            try:
                await self._deployments(controller)
            except Exception as exc:
                if (dependency := outage_of(exc)) is not None:
                    self.health.failed(dependency, exc)
                else:
                    log.exception("the deployments' controller failed; it runs again in %.1f s", wait)

    async def _deployments(self, controller: Controller) -> None:
        if await asyncio.to_thread(controller.tick):  # a replica joined or left: the gateway sees it now
            await self._refresh()

    async def _refresh(self) -> None:
        async with self._refreshing:
            states = {id(state.backend): state for _, state in self.registry.all_states()}
            gone = await asyncio.to_thread(self.registry.load)
            # Closing a backend breaks what runs on it: requests and streams under way finish first.
            self._retired += [states[id(backend)] for backend in gone]
            await self._close_retired()

    async def _close_retired(self, *, everything: bool = False) -> None:
        busy = []
        for state in self._retired:
            if state.outstanding and not everything:
                busy.append(state)
            else:
                await state.backend.aclose()
        self._retired = busy

    async def _probe(self) -> None:
        """Health-check every replica at once; a failing one is taken out (see ReplicaSet.probed). An
        upstream's check is a one-token completion (OpenAIUpstream.health), sent by the backend itself:
        it never passes the meter, so it is not a user's usage."""
        checked = [(m.name, m.replicas, state) for m in self.registry.models.values() for state in m.replicas.replicas]

        async def check(state: ReplicaState) -> bool | None:
            # A replica busy with this process's requests is not checked: an engine that serves one request
            # at a time (llama-cpp-python's server) would queue the check behind a long generation, and it
            # would time out on a healthy replica. A hung one fails those requests' own time limits.
            return None if state.outstanding else await state.backend.health()

        # A check that raises counts as failed, and does not stop the others.
        results = await asyncio.gather(*(check(state) for _, _, state in checked), return_exceptions=True)
        now = time.monotonic()
        gauged = set()
        for (model, replicas, state), result in zip(checked, results, strict=True):
            change = None if result is None else replicas.probed(state, ok=result is True)
            if change is False:
                log.warning("replica %s of %s failed its health check; taken out of rotation", state.url, model)
                self.metrics.replica_failed(model, state.url)  # once per outage, not per failed check
            elif change is True:
                log.warning("replica %s of %s passes its health check again", state.url, model)
            self.metrics.replica_up.labels(model, state.url).set(1 if state.healthy(now) else 0)
            self.metrics.replica_outstanding.labels(model, state.url).set(state.outstanding)
            gauged.add((model, state.url))
        # Replicas an operator removed leave the metrics too (prometheus_client cannot remove labels
        # in its multiprocess mode).
        if self.settings.web.metrics_dir is None:
            for labels in self._gauged - gauged:
                self.metrics.replica_up.remove(*labels)
                self.metrics.replica_outstanding.remove(*labels)
        self._gauged = gauged
