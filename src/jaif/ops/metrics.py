"""Prometheus metrics of the gateway, on a registry of the app's own (no module globals).

With several worker processes (``jaif serve --workers N``) prometheus_client keeps values in files
in one folder and /metrics reads them all back, so a scrape sees the sum over workers (gauges: the
sum of requests in flight, the lowest replica health any worker sees).

Requests are counted in batches: ``observe`` queues a request's figures and the queue is applied
FLUSH_AFTER_S after the first of them (and before every scrape). prometheus_client's per-call work
(label lookup, a lock, in multiprocess mode a write to a shared file, per counter and histogram)
cost more than a proxied request's JSON work; applied per batch it is paid once per label set.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

# Queued requests are applied this long after the first of them (and before every scrape): at thousands of
# requests a second, a batch of a few dozen, where once per turn of the event loop made batches of a few.
FLUSH_AFTER_S = 0.005
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    def __init__(self, *, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        self._multiprocess_dir = multiprocess_dir
        self.requests = Counter(
            "jaif_requests", "Inference requests by model, endpoint and outcome",
            ["model", "endpoint", "status"], registry=self.registry,
        )
        self.tokens = Counter(
            "jaif_tokens", "Tokens metered by model and kind (prompt, completion)",
            ["model", "kind"], registry=self.registry,
        )
        self.latency = Histogram(
            "jaif_request_latency_seconds", "Request latency by model",
            ["model"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.ttft = Histogram(
            "jaif_time_to_first_token_seconds", "Time to first streamed event by model",
            ["model"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.replica_up = Gauge(
            "jaif_replica_healthy", "1 when a replica is in rotation, 0 while cooling down",
            ["model", "replica"], registry=self.registry, multiprocess_mode="livemin",
        )
        self.replica_outstanding = Gauge(
            "jaif_replica_outstanding_requests", "Requests in flight per replica",
            ["model", "replica"], registry=self.registry, multiprocess_mode="livesum",
        )
        self.replica_failures = Counter(
            "jaif_replica_failures", "Failed attempts per replica",
            ["model", "replica"], registry=self.registry,
        )
        self.usage_pending = Gauge(
            "jaif_usage_records_pending", "Usage records queued for the next flush", registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.dependency_up = Gauge(
            "jaif_dependency_up", "1 while a dependency (database, redis) answers, 0 during its outage",
            ["dependency"], registry=self.registry, multiprocess_mode="livemin",
        )
        # Deployments (deployments/controller.py): set by the process that runs the controller.
        self.deployment_desired = Gauge(
            "jaif_deployment_desired_replicas", "Replicas the autoscaler wants per deployment",
            ["deployment"], registry=self.registry, multiprocess_mode="livemax",
        )
        self.deployment_replicas = Gauge(
            "jaif_deployment_replicas", "Live replicas per deployment and state (pending, starting, ready, draining)",
            ["deployment", "state"], registry=self.registry, multiprocess_mode="livemax",
        )
        self.deployment_decisions = Counter(
            "jaif_deployment_scale_decisions", "The autoscaler's decisions per deployment and direction (up, down)",
            ["deployment", "direction"], registry=self.registry,
        )
        self._pending: list[tuple[str, str, str, int, int, float, float | None]] = []
        self._flush_soon: asyncio.TimerHandle | None = None
        # The children flush() counts into, by metric and labels (_child).
        self._children: dict[tuple[Counter | Histogram, tuple[str, ...]], Any] = {}

    def observe(
        self,
        *,
        model: str,
        endpoint: str,
        status: str,
        prompt_tokens: int,
        completion_tokens: int,
        latency_s: float,
        ttft_s: float | None,
    ) -> None:
        self._pending.append((model, endpoint, status, prompt_tokens, completion_tokens, latency_s, ttft_s))
        if self._flush_soon is None:
            try:
                self._flush_soon = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self.flush)
            except RuntimeError:  # no event loop: at once
                self.flush()

    def flush(self) -> None:
        """Apply the queued requests' figures to the metrics."""
        if self._flush_soon is not None:  # called before its time (a scrape, close): once is enough
            self._flush_soon.cancel()
            self._flush_soon = None
        pending, self._pending = self._pending, []
        requests: dict[tuple[str, str, str], int] = {}
        tokens: dict[tuple[str, str], int] = {}
        latency: dict[str, list[float]] = {}
        ttft: dict[str, list[float]] = {}
        for model, endpoint, status, prompt_tokens, completion_tokens, latency_s, ttft_s in pending:
            key = (model, endpoint, status)
            requests[key] = requests.get(key, 0) + 1
            if prompt_tokens:
                tokens[(model, "prompt")] = tokens.get((model, "prompt"), 0) + prompt_tokens
            if completion_tokens:
                tokens[(model, "completion")] = tokens.get((model, "completion"), 0) + completion_tokens
            latency.setdefault(model, []).append(latency_s)
            if ttft_s is not None:
                ttft.setdefault(model, []).append(ttft_s)
        for labels, count in requests.items():
            self._child(self.requests, labels).inc(count)
        for pair, count in tokens.items():  # (model, kind)
            self._child(self.tokens, pair).inc(count)
        for model, values in latency.items():
            _observe_all(self._child(self.latency, (model,)), values)
        for model, values in ttft.items():
            _observe_all(self._child(self.ttft, (model,)), values)

    def _child(self, metric: Counter | Histogram, labels: tuple[str, ...]) -> Any:
        """``metric.labels(*labels)``, looked up once: labels() validates and locks on every call."""
        key = (metric, labels)
        if (child := self._children.get(key)) is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def replica_failed(self, model: str, replica: str) -> None:
        self.replica_failures.labels(model, replica).inc()

    def deployment_tick(self, deployment: str, desired: int, direction: str, states: dict[str, int]) -> None:
        """After the controller reconciled a deployment (deployments/controller.py ``on_tick``)."""
        self.deployment_desired.labels(deployment).set(desired)
        for state, count in states.items():
            self.deployment_replicas.labels(deployment, state).set(count)
        if direction:
            self.deployment_decisions.labels(deployment, direction).inc()

    def render(self) -> bytes:
        self.flush()
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=str(self._multiprocess_dir))
        return generate_latest(merged)

    def close(self) -> None:
        """A worker going away: what it queued is counted, and its live gauges leave the sums."""
        self.flush()
        if self._multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), path=str(self._multiprocess_dir))


def scrape_allowed(authorization: str | None, token: str | None) -> bool:
    """Whether a scrape may read /metrics: always without a token configured, else only with
    ``Authorization: Bearer <token>`` (compared in constant time)."""
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """Observe many values into one histogram child: one increment per bucket hit, one for the sum.

    Reaches into the child's buckets (prometheus_client keeps them per bucket, not cumulative); where
    a version lays them out otherwise, one observe() per value.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if len(values) == 1 or bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1
    total.inc(sum(values))
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)
