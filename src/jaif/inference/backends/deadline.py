"""Time limits on one exchange with a replica, kept by one timer: first byte, idle, total.

    ttfb_s   from sending the request until the first byte of the answer: a plain answer, or a
             stream's first event. When it passes, the replica's health check (``confirm``) decides:
             a replica that fails it is hung, and the exchange ends at once (nothing was passed on, so
             another replica may try); one that passes is working (a long prompt, a long plain answer
             on a busy engine) and is waited for, up to ``total_s``.
    idle_s   between a stream's events, once the first arrived.
    total_s  the whole exchange.

One timer per replica, not one per request (a TimerHandle per request cost the gateway measurable CPU
at thousands of requests a second): a ``Watch`` sweeps its exchanges' deadlines every quarter of the
shortest limit (at most every second), so a limit passes up to a quarter late; an exchange only adds
itself to a set, and a stream's event only counts itself (the sweep notes when it saw it, so the
idle limit too passes up to a sweep late). A limit that passes cancels the task while it awaits the
replica (never while it is busy with the client), and ``expired`` turns that cancellation into a
TransportError; a cancellation from anywhere else (a client that left, a server shutting down) passes
through untouched, as with ``asyncio.timeout``.
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


class Watch:
    """The deadlines of one replica's exchanges, checked by one timer. Made inside the event loop."""

    def __init__(self, timeouts: Timeouts, confirm: Callable[[], Coroutine[Any, Any, bool]]) -> None:
        """``confirm``: the replica's health check, run when an exchange's first byte is late."""
        self.timeouts = timeouts
        self.confirm = confirm
        self.loop = asyncio.get_running_loop()
        self._active: set[Deadline] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._every = max(0.05, min(1.0, timeouts.ttfb_s / 4, timeouts.idle_s / 4, timeouts.total_s / 4))

    def start(self) -> Deadline:
        """A deadline for an exchange the current task begins now; ``close`` it when it is over."""
        # With the loop given, current_task does not ask for the running loop (in Python 3.11 a getpid()
        # system call each time): the watch is this loop's.
        task = asyncio.current_task(self.loop)
        assert task is not None
        deadline = Deadline(self, task)
        self._active.add(deadline)
        if self._handle is None:
            self._handle = self.loop.call_later(self._every, self._sweep)
        return deadline

    def discard(self, deadline: Deadline) -> None:
        """``deadline``'s exchange is over."""
        self._active.discard(deadline)

    def _sweep(self) -> None:
        self._handle = None
        now = self.loop.time()
        for deadline in list(self._active):
            deadline.check(now)
        if self._active:
            self._handle = self.loop.call_later(self._every, self._sweep)


class Deadline:
    """One exchange's limits (made by ``Watch.start``). Its state starts as the class's defaults: a
    deadline is made per exchange, and most end before anything but their start is stored."""

    _probe: asyncio.Task | None = None
    _cancelled = False  # this deadline cancelled the task
    _closed = False  # the exchange is over: nothing may cancel its task any more
    first = False  # the first byte (a plain answer) or event (a stream) arrived
    events = 0  # a stream's events, counted by it
    _seen = 0  # a stream's events, as the sweep saw them
    waiting = True  # the task awaits the replica (not the client)
    reason: str | None = None  # the limit that passed
    spent = False  # the request limit passed: the replica was given all the time there is
    unhealthy = False  # the first byte was late and the health check failed: the replica is hung

    def __init__(self, watch: Watch, task: asyncio.Task) -> None:
        self._watch = watch
        self._task = task
        self._cancelling = task.cancelling()  # others' cancellation requests, before any of this deadline's
        self.started = self.last = watch.loop.time()

    def first_event(self) -> None:
        """The first byte is in: from now on the idle limit counts."""
        self.first = True
        self.last = self._watch.loop.time()
        self._stop_probe()

    def resume(self) -> None:
        """The task awaits the replica again (a stream's next event), maybe from another task than before."""
        task = asyncio.current_task(self._watch.loop)
        if task is not self._task and task is not None:
            self._task, self._cancelling = task, task.cancelling()
        self.waiting = True

    def expired(self, exc: asyncio.CancelledError) -> TransportError:
        """``exc`` as the TransportError of the limit that passed; re-raises any other cancellation."""
        if not self._cancelled or self._task.uncancel() > self._cancelling:
            raise exc
        return TransportError(self.reason or "a time limit passed", timeout=True, answered=self.first)

    def close(self) -> None:
        self._closed = True
        self._watch.discard(self)
        if self._probe is not None:
            self._stop_probe()

    def check(self, now: float) -> None:
        """Called by the Watch's sweep."""
        if self.reason is not None:
            return
        limits = self._watch.timeouts
        if now - self.started >= limits.total_s:
            self.spent = True
            self._expire(f"no complete answer within {limits.total_s:g} s (the request limit)")
        elif not self.first:
            if self._probe is None and now - self.started >= limits.ttfb_s:
                # The first byte is late: is the replica working, or hung?
                self._probe = self._watch.loop.create_task(self._watch.confirm())
                self._probe.add_done_callback(self._confirmed)
        elif self.events != self._seen:  # events came since the last sweep
            self._seen, self.last = self.events, now
        elif self.waiting and now - self.last >= limits.idle_s:
            self._expire(f"no event for {limits.idle_s:g} s (the idle limit)")

    def _confirmed(self, probe: asyncio.Task) -> None:
        # A probe that finished in the same turn as the exchange runs this after close(): nothing to do.
        if self._closed or probe.cancelled() or self.first or self.reason is not None:
            return
        if probe.exception() is not None or probe.result() is not True:
            ttfb = self._watch.timeouts.ttfb_s
            self.unhealthy = True
            self._expire(f"no answer within {ttfb:g} s (the first-byte limit) and the health check failed")

    def _expire(self, reason: str) -> None:
        if self._closed:
            return
        self.reason = reason
        if self.waiting:
            self._cancelled = True
            self._task.cancel()
        # else: the task is with the client; the stream sees ``reason`` before it awaits the replica again

    def _stop_probe(self) -> None:
        if self._probe is not None:
            self._probe.remove_done_callback(self._confirmed)
            if not self._probe.done():
                self._probe.cancel()
        self._probe = None
