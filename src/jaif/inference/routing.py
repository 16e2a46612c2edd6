"""Replica routing: least outstanding requests over healthy replicas, cool-down and probing back in."""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from jaif.inference.backends.base import InferenceBackend


@dataclass(eq=False)
class ReplicaState:
    backend: InferenceBackend
    outstanding: int = 0
    cooldown_until: float = 0.0
    failures: int = 0
    last_error: str | None = None
    probe_failing: bool = False  # the last health check failed

    @property
    def url(self) -> str:
        return self.backend.url

    def healthy(self, now: float) -> bool:
        return now >= self.cooldown_until


@dataclass(eq=False)
class ReplicaSet:
    """The replicas of one model. All methods run on the event loop; no locks needed."""

    replicas: list[ReplicaState]
    cooldown_s: float = 10.0
    _tie: itertools.count = field(default_factory=itertools.count)
    held: int = 0  # requests waiting for a replica to become ready (a deployment's cold start)
    last_used: float = 0.0  # epoch seconds of the newest request (a deployment scales to zero when idle)

    def pick(self, exclude: Collection[ReplicaState] = ()) -> ReplicaState | None:
        # One pass, no sets or lists built on the way: this runs once per request.
        now = time.monotonic()
        best: list[ReplicaState] = []
        least = 0
        for replica in self.replicas:
            if now < replica.cooldown_until or (exclude and replica in exclude):
                continue
            if not best or replica.outstanding < least:
                best = [replica]
                least = replica.outstanding
            elif replica.outstanding == least:
                best.append(replica)
        if not best:
            return None
        # Rotate among equals so idle replicas share sequential load too.
        return best[next(self._tie) % len(best)]

    def mark_failed(self, replica: ReplicaState, reason: str) -> None:
        replica.failures += 1
        replica.last_error = reason
        replica.cooldown_until = time.monotonic() + self.cooldown_s

    def probed(self, replica: ReplicaState, *, ok: bool) -> bool | None:
        """Record a background health check. A failed one takes the replica out, or starts its cool-down
        again, so a replica that stays down stays out; a passing one leaves a running cool-down alone,
        so a replica that answers health checks but failed requests (a 5xx) still sits it out.

        Returns False when this check is the first to fail (after passing ones, or the first check at
        all), True when it is the first to pass after failing ones, and None otherwise: the caller logs
        each change once, whether or not a failed request had already put the replica in cool-down."""
        changed = ok == replica.probe_failing
        replica.probe_failing = not ok
        if not ok:
            self.mark_failed(replica, "health check failed")
        return ok if changed else None

    def mark_ok(self, replica: ReplicaState) -> None:
        replica.failures = 0
        replica.cooldown_until = 0.0
        replica.last_error = None

    def retry_after(self) -> float:
        now = time.monotonic()
        waits = [r.cooldown_until - now for r in self.replicas]
        return max(1.0, min(waits, default=1.0))
