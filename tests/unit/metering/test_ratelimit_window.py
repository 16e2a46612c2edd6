"""The fixed one-minute windows of the rate limiters and the errors they answer with."""

from __future__ import annotations

import math

import pytest

from jaif.errors import RateLimited
from jaif.metering.ratelimit import WINDOW_S, _refuse, _window


@pytest.mark.parametrize("now", [0.0, 59.999, 60.0, 61.5, 1_764_000_000.25, 1_764_000_059.9])
def test_a_window_starts_on_a_whole_minute_and_says_how_long_it_has_left(now):
    start, left = _window(now)
    assert start % WINDOW_S == 0
    assert start <= now < start + WINDOW_S
    assert math.isclose(start + left, start + WINDOW_S - (now - start))
    assert 0 < left <= WINDOW_S


def test_every_process_agrees_on_the_window():
    # Windows are derived from the wall clock alone, so processes need no coordination.
    assert _window(120.0)[0] == _window(179.9)[0] == 120
    assert _window(180.0)[0] == 180


def test_a_refusal_names_the_limits_and_asks_to_wait_at_least_a_second():
    error = _refuse(5, None, 10, retry_after=0.2)
    assert isinstance(error, RateLimited)
    assert (error.status, error.code) == (429, "rate_limit_exceeded")
    assert "5 requests" in error.message
    assert error.retry_after == 1.0


def test_a_request_bigger_than_the_tokens_per_minute_is_told_to_lower_max_tokens():
    error = _refuse(None, 100, 150, retry_after=30.0)
    assert "more than this key's limit of 100 tokens per minute" in error.message
    assert "max_tokens" in error.message
