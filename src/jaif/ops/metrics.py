"""Prometheus metrics of the gateway, on a registry of the app's own (no module globals).

With several worker processes (``jaif serve --workers N``) prometheus_client keeps values in files
in one folder and /metrics reads them all back, so a scrape sees the sum over workers (gauges: the
sum of requests in flight, the lowest replica health any worker sees).
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

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
        self.requests.labels(model, endpoint, status).inc()
        if prompt_tokens:
            self.tokens.labels(model, "prompt").inc(prompt_tokens)
        if completion_tokens:
            self.tokens.labels(model, "completion").inc(completion_tokens)
        self.latency.labels(model).observe(latency_s)
        if ttft_s is not None:
            self.ttft.labels(model).observe(ttft_s)

    def replica_failed(self, model: str, replica: str) -> None:
        self.replica_failures.labels(model, replica).inc()

    def render(self) -> bytes:
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=str(self._multiprocess_dir))
        return generate_latest(merged)

    def close(self) -> None:
        """A worker going away: its live gauges leave the sums."""
        if self._multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), path=str(self._multiprocess_dir))
