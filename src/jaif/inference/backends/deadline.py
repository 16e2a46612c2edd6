"""Time limits on one exchange with a replica, kept by one timer: first byte, idle, total.

    ttfb_s   from sending the request until the first byte of the answer: a plain answer, or a
             stream's first event. When it passes, the replica's health check (``confirm``) decides:
             a replica that fails it is hung, and the exchange ends at once (nothing was passed on, so
             another replica may try); one that passes is working (a long prompt, a long plain answer
             on a busy engine) and is waited for, up to ``total_s``.
    idle_s   between a stream's events, once the first arrived.
    total_s  the whole exchange.

One TimerHandle per exchange, re-armed lazily: a stream's event only stores the time. A limit that
passes cancels the task while it awaits the replica (never while it is busy with the client), and
``expired`` turns that cancellation into a TransportError; a cancellation from anywhere else (a client
that left, a server shutting down) passes through untouched, as with ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from jaif.inference.backends.transport import TransportError


@dataclass(frozen=True)
class Timeouts:
    """A model's upstream time limits (``inference.*_timeout_s``, or the model's own)."""

    ttfb_s: float = 30.0
    idle_s: float = 60.0
    total_s: float = 600.0


class Deadline:
    """Made inside the task that awaits the replica; ``close`` it when the exchange is over."""

    __slots__ = (
        "_loop", "_task", "_cancelling", "_timeouts", "_end", "_confirm", "_handle", "_probe",
        "first", "last", "waiting", "reason", "spent", "_cancelled",
    )

    def __init__(self, timeouts: Timeouts, confirm: Callable[[], Coroutine[Any, Any, bool]]) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        self._timeouts = timeouts
        self._confirm = confirm
        now = self._loop.time()
        self._end = now + timeouts.total_s
        self._probe: asyncio.Task | None = None
        self.first = False  # the first byte (a plain answer) or event (a stream) arrived
        self.last = now  # when the last event arrived
        self.waiting = True  # the task awaits the replica (not the client)
        self.reason: str | None = None  # the limit that passed
        self.spent = False  # the request limit passed: the replica was given all the time there is
        self._cancelled = False  # this deadline cancelled the task
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(
            min(now + timeouts.ttfb_s, self._end), self._check
        )

    def first_event(self) -> None:
        """The first byte is in: from now on the idle limit counts."""
        self.first = True
        self.last = self._loop.time()
        self._stop_probe()
        self._arm(min(self.last + self._timeouts.idle_s, self._end))

    def resume(self) -> None:
        """The task awaits the replica again (a stream's next event), maybe from another task than before."""
        task = asyncio.current_task()
        if task is not self._task and task is not None:
            self._task, self._cancelling = task, task.cancelling()
        self.waiting = True

    def expired(self, exc: asyncio.CancelledError) -> TransportError:
        """``exc`` as the TransportError of the limit that passed; re-raises any other cancellation."""
        if not self._cancelled or self._task.uncancel() > self._cancelling:
            raise exc
        return TransportError(self.reason or "a time limit passed", timeout=True, answered=self.first)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._stop_probe()

    # -- the timer ---------------------------------------------------------------------------------
    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle = None
        now = self._loop.time()
        if now >= self._end:
            self.spent = True
            self._expire(f"no complete answer within {self._timeouts.total_s:g} s (the request limit)")
        elif not self.first:
            if self._probe is None:  # the first byte is late: is the replica working or hung?
                self._probe = self._loop.create_task(self._confirm())
                self._probe.add_done_callback(self._confirmed)
            self._arm(self._end)
        elif self.waiting and now - self.last >= self._timeouts.idle_s:
            self._expire(f"no event for {self._timeouts.idle_s:g} s (the idle limit)")
        else:
            self._arm(min(max(self.last, now) + self._timeouts.idle_s, self._end))

    def _confirmed(self, probe: asyncio.Task) -> None:
        if probe.cancelled() or self.first or self.reason is not None:
            return
        if probe.exception() is not None or probe.result() is not True:
            self._expire(
                f"no answer within {self._timeouts.ttfb_s:g} s (the first-byte limit) and the health check failed"
            )

    def _expire(self, reason: str) -> None:
        self.reason = reason
        if self.waiting:
            self._cancelled = True
            self._task.cancel()
        # else: the task is with the client; the stream sees ``reason`` before it awaits the replica again

    def _stop_probe(self) -> None:
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
        self._probe = None
