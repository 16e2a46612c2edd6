"""Revoked API keys reach every gateway process's key cache, not only after ``key_cache_s``.

A gateway process trusts a looked-up key for ``key_cache_s`` seconds (inference/keys.py). Revocation
cuts that short:

- ``key_revoked(session=..., key_hash=...)`` is the one call a service makes when it revokes a key
  (``access.service.revoke_api_key``; job-scoped keys at the end of their job). It only notes the key
  on the session: nothing is announced unless the transaction commits.
- ``announce_on_commit(factory, ...)`` hooks a session factory: after each commit the keys noted go
  to ``local`` (this process's key cache, at once) and, where Redis is configured, are published on
  ``CHANNEL``. `jaif serve` and the CLI hook theirs.
- ``RevocationListener`` runs in every gateway process with Redis configured: it subscribes to
  ``CHANNEL`` and drops each announced key from its cache (within milliseconds). It reconnects when
  Redis restarts; each time it is subscribed again it empties its cache, since what was announced
  while it was away is lost. Losing Redis is reported to the process's DependencyHealth (one line
  when the outage starts, not one per reconnection attempt).

Without Redis, a revocation by another process (the CLI, another host) takes effect within
``key_cache_s``. The message is the key's SHA-256 (as stored in the database), never the key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from jaif.dependencies import REDIS, DependencyHealth

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

CHANNEL = "jaif:api-keys:revoked"
_PENDING = "jaif.revoked_api_keys"  # session.info: hashes of keys revoked in the open transaction
RECONNECT_MAX_S = 5.0

Revoked = Callable[[Iterable[str]], None]


def key_revoked(*, session: Session, key_hash: str) -> None:
    """Announce, once ``session``'s transaction commits, that the key with this hash is revoked."""
    session.info.setdefault(_PENDING, set()).add(key_hash)


def announce_on_commit(
    factory: sessionmaker[Session], *, redis_url: str | None, local: Revoked | None = None
) -> None:
    """After each commit of a session from ``factory``, tell ``local`` and publish on Redis the keys
    ``key_revoked`` noted. Runs in the committing thread; a failed publish is logged, never raised
    (the revocation is committed: other processes see it within ``key_cache_s`` regardless)."""
    publisher = _Publisher(redis_url) if redis_url else None

    def committed(session: Session) -> None:
        hashes = session.info.pop(_PENDING, None)
        if not hashes:
            return
        if local is not None:
            local(hashes)
        if publisher is not None:
            publisher.publish(hashes)

    def rolled_back(session: Session) -> None:
        session.info.pop(_PENDING, None)

    event.listen(factory, "after_commit", committed)
    event.listen(factory, "after_rollback", rolled_back)


class _Publisher:
    def __init__(self, url: str) -> None:
        self._url = url
        self._client: redis.Redis | None = None

    def publish(self, hashes: Iterable[str]) -> None:
        import redis

        try:
            if self._client is None:
                self._client = redis.Redis.from_url(self._url, socket_timeout=2, socket_connect_timeout=2)
            for digest in hashes:
                self._client.publish(CHANNEL, digest)
        except redis.RedisError as exc:
            log.error(
                "could not announce a revoked API key on Redis (%s); gateways drop it within key_cache_s", exc
            )


class RevocationListener:
    """Subscribes to ``CHANNEL`` and hands each announced key hash to ``revoked``; after each
    (re)subscription calls ``resubscribed`` (the cache forgets everything: announcements made while
    the listener was away are lost)."""

    def __init__(
        self,
        redis_url: str,
        *,
        revoked: Revoked,
        resubscribed: Callable[[], None],
        health: DependencyHealth | None = None,
    ) -> None:
        self._url = redis_url
        self._revoked = revoked
        self._resubscribed = resubscribed
        self._health = health

    async def run(self) -> None:
        import redis
        import redis.asyncio as aioredis

        delay = 0.1
        while True:
            client = aioredis.from_url(self._url, health_check_interval=10, socket_keepalive=True)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        kind = message.get("type")
                        if kind == "subscribe":
                            self._resubscribed()
                            delay = 0.1
                        elif kind == "message":
                            data = message.get("data")
                            self._revoked([data.decode() if isinstance(data, bytes) else str(data)])
            except (redis.RedisError, OSError) as exc:
                if self._health is not None:
                    self._health.failed(REDIS, exc)
                    log.debug("API key revocations: lost Redis (%s); reconnecting in %.1f s", exc, delay)
                else:
                    log.warning("API key revocations: lost Redis (%s); reconnecting in %.1f s", exc, delay)
            finally:
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
