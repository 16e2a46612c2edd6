"""autoscale.py: the target from the moving average of in-flight requests, up at once, down after a
window with hysteresis, clamped to [min (at least 1), max]; with min 0, to zero once idle, and back up
when a request comes."""

from __future__ import annotations

import pytest

from jaif.deployments.autoscale import ScaleState, Scaling, decide

SCALING = Scaling(min_replicas=1, max_replicas=4, target_inflight=4, up_window_s=10, down_window_s=60)


def run(steps, scaling=SCALING, state=None):
    """Feed (time, inflight) samples; returns the decisions."""
    state = state or ScaleState()
    return [decide(scaling, state, now=t, inflight=v) for t, v in steps], state


@pytest.mark.parametrize("inflight,want", [(0, 1), (1, 1), (4, 1), (4.5, 2), (8, 2), (9, 3), (16, 4), (100, 4)])
def test_the_target_is_the_average_over_target_inflight_rounded_up_and_clamped(inflight, want):
    assert SCALING.target(inflight, 1) == want


def test_scale_up_follows_a_load_step_within_a_tick_and_says_why():
    decisions, _ = run([(0, 0), (1, 0), (2, 20)])  # average over 10 s: 6.7 -> 2
    assert [n for n, _ in decisions] == [1, 1, 2]
    assert decisions[-1][1] == "scale up 1 -> 2: 6.7 requests in flight on average over 10 s, 4 per replica"
    decisions, state = run([(3, 20), (4, 20), (5, 20), (6, 20)], state=_)
    assert [n for n, _ in decisions] == [3, 3, 4, 4]  # the average climbs: 10, 12, 13.3, 14.3 (/ 4, up)


def test_scale_down_waits_its_window_and_a_short_dip_does_not_flap():
    _, state = run([(t, 16) for t in range(0, 20)])
    assert state.current == 4
    decisions, state = run([(t, 0) for t in range(20, 60)] + [(t, 16) for t in range(60, 65)], state=state)
    assert all(n == 4 for n, _ in decisions)  # dipped for 40 s < 60 s: kept
    decisions, state = run([(t, 0) for t in range(65, 200)], state=state)
    changes = [(n, why) for n, why in decisions if why]
    assert changes and changes[0][0] < 4 and changes[0][1].startswith("scale down 4 -> ")
    assert decisions[-1][0] == 1  # at last the floor


def test_the_floor_is_min_but_zero_only_when_idle_and_max_caps():
    assert Scaling(0, 3, 4, 10, 60).floor(idle=False) == 1
    assert Scaling(0, 3, 4, 10, 60).floor(idle=True) == 0
    assert Scaling(2, 3, 4, 10, 60).floor(idle=True) == 2
    decisions, _ = run([(0, 0)], scaling=Scaling(2, 3, 4, 10, 60))
    assert decisions == [(2, "")]


def test_a_changed_min_or_max_moves_the_count_at_once():
    _, state = run([(0, 16)])
    assert state.current == 4
    decisions, _ = run([(1, 16)], scaling=Scaling(1, 2, 4, 10, 60), state=state)
    assert decisions == [(2, "min or max changed")]


IDLE = Scaling(min_replicas=0, max_replicas=3, target_inflight=2, up_window_s=10, down_window_s=60, idle_s=120)


def test_min_zero_starts_cold_and_a_held_request_scales_up_from_zero_at_once():
    state = ScaleState()
    assert decide(IDLE, state, now=0, inflight=0, idle_s=None) == (0, "")
    assert decide(IDLE, state, now=1, inflight=1, idle_s=0) == (1, "scale up 0 -> 1: 1 request(s) waiting")
    # five held at once: the average over 10 s is 5 / 3 samples, 2 per replica -> 1; then it climbs
    assert decide(IDLE, state, now=2, inflight=5, idle_s=0)[0] == 1


def test_scale_to_zero_after_idle_seconds_without_a_request_and_not_before():
    state = ScaleState()
    decide(IDLE, state, now=0, inflight=1, idle_s=0)
    assert decide(IDLE, state, now=60, inflight=0, idle_s=60) == (1, "")  # idle for less than 120 s: kept
    assert decide(IDLE, state, now=100, inflight=1, idle_s=119) == (1, "")  # a long request: not idle
    n, why = decide(IDLE, state, now=200, inflight=0, idle_s=130)
    assert n == 0 and why == "scale to zero 1 -> 0: no request for 2.17 min (idle after 2 min)"
    assert decide(IDLE, state, now=201, inflight=0, idle_s=131) == (0, "")


def test_a_new_controller_starts_from_the_replicas_running():
    # A takeover under load must not cancel replicas that serve: it starts from what runs.
    state = ScaleState()
    assert decide(SCALING, state, now=0, inflight=0, running=3) == (3, "")
    assert decide(SCALING, ScaleState(), now=0, inflight=0, running=9)[0] == 4  # clamped to max
    # with min 0 and nothing asked for since ever, replicas running are taken down (the controller logs why)
    assert decide(IDLE, ScaleState(), now=0, inflight=0, idle_s=None, running=2)[0] == 0
