"""The autoscaler's decision: how many replicas a deployment wants now, from the requests on it (in
flight on its replicas, and held for a replica, in every gateway process). Pure: the controller feeds it
samples and keeps its state.

- The target is the moving average of those requests over ``up_window_s`` divided by
  ``target_inflight``, rounded up and clamped to [floor, max_replicas].
- Scale-up follows at once (within a tick of the load step); so does scaling up from zero when a
  request comes (it is held meanwhile: inference/gateway.py).
- Scale-down waits: the target must have stayed below the current count for ``down_window_s``, and the
  new count is the target over that whole window (the hysteresis that keeps it from flapping).
- The floor is ``min_replicas``, but at least 1, except with ``min_replicas`` 0 once no request has come
  for ``idle_s`` (or none ever) and none is on it: then it scales to zero at once.
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
    idle_s: float = math.inf  # without a request this long, a deployment with min_replicas 0 goes to zero

    def floor(self, idle: bool) -> int:
        if self.min_replicas == 0 and idle:
            return 0
        return min(max(self.min_replicas, 1), self.max_replicas)

    def clamp(self, n: int, floor: int) -> int:
        return max(floor, min(self.max_replicas, n))

    def target(self, inflight: float, floor: int) -> int:
        return self.clamp(math.ceil(inflight / self.target_inflight - 1e-9), floor)


@dataclass
class ScaleState:
    """What the controller keeps per deployment between ticks."""

    samples: deque[tuple[float, float]] = field(default_factory=deque)  # (time, requests in flight or held)
    current: int | None = None
    lower_since: float | None = None  # since when the target has been below ``current``


def _mean(samples, since: float) -> float:
    values = [v for t, v in samples if t >= since]
    return sum(values) / len(values) if values else 0.0


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.3g} min" if seconds >= 60 else f"{seconds:.3g} s"


def decide(
    scaling: Scaling, state: ScaleState, *, now: float, inflight: float, idle_s: float | None = None,
    running: int | None = None,
) -> tuple[int, str]:
    """The replicas wanted now, and why it changed ("" when it did not).

    ``inflight``: requests in flight on the deployment's replicas plus those held for one; ``idle_s``:
    seconds since its last request (None: never one); ``running``: its live replicas, which a new
    controller (a restart, a takeover) starts from."""
    state.samples.append((now, inflight))
    while state.samples and state.samples[0][0] < now - scaling.down_window_s:
        state.samples.popleft()
    idle = inflight == 0 and (idle_s is None or idle_s >= scaling.idle_s)
    floor = scaling.floor(idle)
    if state.current is None:
        state.current = scaling.clamp(running if running is not None else floor, floor)
    recent = _mean(state.samples, now - scaling.up_window_s)
    if state.current == 0:
        if floor == 0:
            return 0, ""
        want = scaling.target(recent, floor)
        state.current, state.lower_since = want, None
        why = f"{inflight:g} request(s) waiting" if inflight else f"--min-replicas is {scaling.min_replicas}"
        return want, f"scale up 0 -> {want}: {why}"
    if floor == 0:
        was, state.current, state.lower_since = state.current, 0, None
        since = "ever" if idle_s is None else f"for {_minutes(idle_s)}"
        return 0, f"scale to zero {was} -> 0: no request {since} (idle after {_minutes(scaling.idle_s)})"
    current = scaling.clamp(state.current, floor)
    changed = current != state.current  # min or max moved under it
    state.current = current
    want = scaling.target(recent, floor)
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
    down = max(scaling.target(whole, floor), want)
    if down >= current:
        return current, ""
    state.current, state.lower_since = down, None
    return down, (f"scale down {current} -> {down}: {whole:.1f} requests in flight on average over "
                  f"{scaling.down_window_s:g} s, {scaling.target_inflight} per replica")
