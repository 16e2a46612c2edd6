"""Replica routing: least outstanding requests over healthy replicas, prefix affinity, cool-down and
probing back in.

Prefix affinity (``inference.affinity``): a request of a model with two or more replicas carries a key,
a hash of the start of its prompt (``prefix_key``: a chat's messages up to and including the first user
message, a completion's prompt, at most ``inference.affinity_prefix_chars`` characters). Requests with
the same key, the turns of one conversation or many conversations under one long system prompt, go to
the same replica (rendezvous hashing over the replicas that may be picked), where the engine has that
prefix cached, as long as it has at most ``inference.affinity_slack`` requests in flight more than the
least busy one; else, and without a key, to the least busy one. The key is a CRC-32, the same in every
worker process and after a restart (Python's ``hash()`` of a string is not).

Failures (``failed``): a replica that could not be reached or whose answer broke is taken out of
rotation for ``cooldown_s``; one that answered with an error (a 5xx) only after REPEATED_ERRORS such
answers in a row. Never the last healthy replica of a model, unless a health check failed too (the
background checks, ``probed``, or the one a late first byte starts): one bad answer no longer takes a
model with one replica away from everyone.
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from jaif.inference.backends.base import InferenceBackend

# Error answers (5xx) in a row from one replica that take it out of rotation.
REPEATED_ERRORS = 3


@dataclass(eq=False)
class ReplicaState:
    backend: InferenceBackend
    outstanding: int = 0
    cooldown_until: float = 0.0
    failures: int = 0
    last_error: str | None = None
    probe_failing: bool = False  # the last health check failed
    errors: int = 0  # error answers (5xx) in a row, since its last good answer
    seed: int = field(init=False)  # its place in rendezvous hashing: from its URL, the same in every process

    def __post_init__(self) -> None:
        self.seed = zlib.crc32(self.backend.url.encode())

    @property
    def url(self) -> str:
        return self.backend.url

    def healthy(self, now: float) -> bool:
        return now >= self.cooldown_until


@dataclass(frozen=True)
class Affinity:
    """The ``inference.affinity*`` settings."""

    prefix_chars: int = 2048
    slack: int = 2


@dataclass(eq=False)
class ReplicaSet:
    """The replicas of one model. All methods run on the event loop; no locks needed."""

    replicas: list[ReplicaState]
    cooldown_s: float = 10.0
    affinity: Affinity | None = None  # None: affinity off
    _tie: itertools.count = field(default_factory=itertools.count)
    held: int = 0  # requests waiting for a replica to become ready (a deployment's cold start)
    last_used: float = 0.0  # epoch seconds of the newest request (a deployment scales to zero when idle)

    def affinity_key(self, body: Mapping[str, Any]) -> int | None:
        """The prefix key of a request's body, or None: one replica only, affinity off, no prompt text."""
        if self.affinity is None or len(self.replicas) < 2:
            return None
        return prefix_key(body, self.affinity.prefix_chars)

    def pick(self, exclude: Collection[ReplicaState] = (), key: int | None = None) -> ReplicaState | None:
        # One pass, no sets or lists built on the way: this runs once per request.
        now = time.monotonic()
        if len(self.replicas) == 1:  # the commonest case, in short: no choice to make
            only = self.replicas[0]
            return None if now < only.cooldown_until or (exclude and only in exclude) else only
        best: list[ReplicaState] = []
        least = 0
        preferred: ReplicaState | None = None  # the highest rendezvous score for ``key``
        top = 0
        for replica in self.replicas:
            if now < replica.cooldown_until or (exclude and replica in exclude):
                continue
            if key is not None:
                score = hash((key, replica.seed))  # ints only: the same in every process
                if preferred is None or score > top:
                    preferred, top = replica, score
            if not best or replica.outstanding < least:
                best = [replica]
                least = replica.outstanding
            elif replica.outstanding == least:
                best.append(replica)
        if not best:
            return None
        if preferred is not None and self.affinity is not None and preferred.outstanding <= least + self.affinity.slack:
            return preferred
        # Rotate among equals so idle replicas share sequential load too.
        return best[next(self._tie) % len(best)]

    def failed(self, replica: ReplicaState, reason: str, *, answered: bool, unhealthy: bool = False) -> bool:
        """A request failed on ``replica``: it could not be reached, timed out or broke off (``answered``
        False), or it answered with an error (a 5xx: ``answered`` True). Returns True when the replica
        was taken out of rotation: at once, or for error answers once REPEATED_ERRORS came in a row;
        never while it is the last healthy replica, unless a health check confirms it is down: its last
        background check failed, or the one run for this request (``unhealthy``: a late first byte)."""
        replica.last_error = reason
        if answered:
            replica.errors += 1
            if replica.errors < REPEATED_ERRORS:
                return False
        if not (replica.probe_failing or unhealthy):
            now = time.monotonic()
            if not any(other is not replica and now >= other.cooldown_until for other in self.replicas):
                return False
        self.mark_failed(replica, reason)
        return True

    def mark_failed(self, replica: ReplicaState, reason: str) -> None:
        replica.failures += 1
        replica.errors = 0
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
        replica.errors = 0
        replica.cooldown_until = 0.0
        replica.last_error = None

    def retry_after(self) -> float:
        now = time.monotonic()
        waits = [r.cooldown_until - now for r in self.replicas]
        return max(1.0, min(waits, default=1.0))


def prefix_key(body: Mapping[str, Any], limit: int) -> int | None:
    """A hash of the first ``limit`` characters of a request's prompt: for a chat, of its messages up to
    and including the first user message (a conversation's later turns begin the same way); for a
    completion, of its (first) prompt. None without prompt text (an embedding, an image-only message)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        text = _chat_prefix(messages, limit)
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
            prompt = prompt[0]  # a batch of prompts: the first one
        if isinstance(prompt, list):  # token ids
            return hash(tuple(prompt[: max(1, limit // 4)])) if prompt else None
        text = prompt[:limit] if isinstance(prompt, str) else ""
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) if text else None


def _chat_prefix(messages: list, limit: int) -> str:
    parts: list[str] = []
    size = 0
    for message in messages:
        if not isinstance(message, dict):
            break
        content = message.get("content")
        if isinstance(content, list):  # content parts: their text
            content = "".join(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        if isinstance(content, str) and content:
            piece = content[: limit - size]
            parts.append(piece)
            size += len(piece)
        if size >= limit or message.get("role") == "user":
            break
    return "\0".join(parts)
