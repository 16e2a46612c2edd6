"""The autoscaler's decision: how many replicas a deployment wants now, from the requests in flight on
it. Pure: the controller feeds it samples and keeps its state.

- The target is the moving average of in-flight requests over ``up_window_s`` divided by
  ``target_inflight``, rounded up and clamped to [floor, max_replicas].
- Scale-up follows at once (within a tick of the load step).
- Scale-down waits: the target must have stayed below the current count for ``down_window_s``, and the
  new count is the target over that whole window (the hysteresis that keeps it from flapping).
- The floor is ``min_replicas``, but at least 1: scaling to zero needs the cold-start hold (a request
  that finds no replica waits for one), which is not built yet, so a deployment never scales itself to
  zero today.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scaling:
    min_replicas: int
    max_replicas: int
    target_inflight: int
    up_window_s: float
    down_window_s: float

    @property
    def floor(self) -> int:
        return min(max(self.min_replicas, 1), self.max_replicas)

    def clamp(self, n: int) -> int:
        return max(self.floor, min(self.max_replicas, n))

    def target(self, inflight: float) -> int:
        return self.clamp(math.ceil(inflight / self.target_inflight - 1e-9))


@dataclass
class ScaleState:
    """What the controller keeps per deployment between ticks."""

    samples: deque[tuple[float, float]] = field(default_factory=deque)  # (time, requests in flight)
    current: int | None = None
    lower_since: float | None = None  # since when the target has been below ``current``


def _mean(samples, since: float) -> float:
    values = [v for t, v in samples if t >= since]
    return sum(values) / len(values) if values else 0.0


def decide(scaling: Scaling, state: ScaleState, *, now: float, inflight: float) -> tuple[int, str]:
    """The replicas wanted now, and why it changed ("" when it did not)."""
    state.samples.append((now, inflight))
    while state.samples and state.samples[0][0] < now - scaling.down_window_s:
        state.samples.popleft()
    current = scaling.clamp(state.current if state.current is not None else scaling.floor)
    changed = state.current is not None and current != state.current  # min or max moved under it
    state.current = current
    recent = _mean(state.samples, now - scaling.up_window_s)
    want = scaling.target(recent)
    if want > current:
        state.current, state.lower_since = want, None
        return want, (f"scale up {current} -> {want}: {recent:.1f} requests in flight on average over "
                      f"{scaling.up_window_s:g} s, {scaling.target_inflight} per replica")
    if want == current:
        state.lower_since = None
        return current, "min or max changed" if changed else ""
    if state.lower_since is None:
        state.lower_since = now
    if now - state.lower_since < scaling.down_window_s:
        return current, "min or max changed" if changed else ""
    whole = _mean(state.samples, now - scaling.down_window_s)
    down = max(scaling.target(whole), want)
    if down >= current:
        return current, ""
    state.current, state.lower_since = down, None
    return down, (f"scale down {current} -> {down}: {whole:.1f} requests in flight on average over "
                  f"{scaling.down_window_s:g} s, {scaling.target_inflight} per replica")
