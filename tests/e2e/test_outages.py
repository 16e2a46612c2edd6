"""Outages of the database and of Redis under a small load, against a real `jaif serve`, a PostgreSQL
cluster and a Redis of the test's own (stopped and started by the test; never the shared ones).

Database down: keys verified before keep getting 200 from the key cache (key_cache_s is 0.5 s here, so
their entries run out during the outage and are served stale), drawing on the quota slice the process
holds; a key not verified yet, and a project whose slice would need the database, get 503 in the
OpenAI shape with Retry-After; nothing gets 500. /healthz and /metrics show the database down, then
up; the log has one line when the outage starts and one when it ends, no traceback; the usage made
during the outage is written once the database is back.

Redis down, in both modes of metering.ratelimit_on_outage: "local" keeps serving keys with a rate
limit from the process's own window (which still limits), "refuse" answers them 503; keys without a
limit never notice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from jaif.access import service as access
from jaif.db.engine import make_engine, make_session_factory, transaction
from tests.support.gateway import healthz, metric, operator_token, scrape
from tests.support.metered import (
    Outcome,
    Platform,
    assert_openai_error,
    avoid_window_edge,
    books,
    one_request,
    provision,
)
from tests.support.outages import PrivateRedis, logged_server, private_postgres
from tests.support.procs import base_env, upstream, wait_for

MAX_TOKENS = 8


def add_key(platform: Platform, *, project: str | None = None, quota: int | None = None, **limits) -> str:
    """A new key of the platform's project, or of a new ``project`` (with ``quota``)."""
    engine = make_engine(platform.url)
    try:
        with transaction(make_session_factory(engine)) as session:
            if project is not None:
                org = f"Org {platform.project}"
                access.create_project(session=session, name=project, organisation=org, token_quota=quota)
            _key, secret = access.create_api_key(
                session=session, project_name=project or platform.project, name=uuid.uuid4().hex, **limits
            )
        return secret
    finally:
        engine.dispose()


def server_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    return base_env(
        JAIF_DATABASE_URL=database_url,
        JAIF_DATA_DIR=str(tmp_path / "var"),
        JAIF_INFERENCE__BUILTIN_MODELS="false",
        JAIF_INFERENCE__KEY_CACHE_S="0.5",
        JAIF_INFERENCE__REGISTRY_REFRESH_S="0.5",
        JAIF_METERING__FLUSH_INTERVAL_S="0.2",
        # One slice covers every request of the test: the outage cannot be waited out by a new one.
        JAIF_METERING__LEASE_TOKENS="1000000",
        **extra,
    )


class Load:
    """Requests with one key, two at a time with a short pause, until stopped; remembers every outcome."""

    def __init__(self, base: str, key: str) -> None:
        self.client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
        self.outcomes: list[Outcome] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def _run(self) -> None:
        while not self._stop.is_set():
            stream = len(self.outcomes) % 2 == 1
            self.outcomes.append(await one_request(self.client, max_tokens=MAX_TOKENS, stream=stream))
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()) for _ in range(2)]

    async def stop(self) -> list[Outcome]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self.client.close()
        return self.outcomes


async def until(read: Callable, done: Callable, *, timeout: float = 30.0):
    """read() (blocking, in a thread) until done(value) holds; returns the last value."""
    return await asyncio.to_thread(wait_for, read, done, timeout=timeout, every=0.2)


async def ask(base: str, key: str, n: int = 1) -> list[Outcome]:
    async with openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30) as client:
        return [await one_request(client, max_tokens=MAX_TOKENS, stream=False) for _ in range(n)]


def dependency_gauge(base: str, name: str) -> float | None:
    return metric(scrape(base), "jaif_dependency_up", dependency=name)


def assert_outage_logged(log: Path, name: str) -> None:
    text = log.read_text()
    assert text.count(f"{name} unavailable (") == 1, text[-5000:]
    assert text.count(f"{name} is back after") == 1, text[-5000:]
    assert "Traceback" not in text, text[-5000:]


def test_database_outage_serves_known_keys_and_refuses_the_rest_with_503(tmp_path):
    with private_postgres() as pg, upstream(base_env()) as (up, _):
        platform = provision(pg.url, upstream=up, quota=10_000_000)
        unverified = add_key(platform)  # first used during the outage
        # Verified before the outage, but its project has no slice yet: needs the database to admit.
        sliceless = add_key(platform, project=f"q-{uuid.uuid4().hex[:8]}", quota=1_000_000)
        token = operator_token(pg.url)  # the REST API, /api/v1, meets the outage too
        log = tmp_path / "serve.log"
        with logged_server(server_env(tmp_path, pg.url), log) as base:
            answered = asyncio.run(_database_outage(pg, base, platform.key, unverified, sliceless, token))
        assert_outage_logged(log, "database")
        # Every request answered, during the outage too, is in the ledger (written once it was back).
        assert books(platform).records == answered


async def _database_outage(pg, base: str, key: str, unverified: str, sliceless: str, token: str) -> int:
    warm = await ask(base, key, 2)
    assert [o.status for o in warm] == [200, 200], warm
    async with httpx.AsyncClient() as client:  # the sliceless project's key is verified, nothing admitted
        listed = await client.get(base + "/v1/models", headers={"authorization": f"Bearer {sliceless}"})
        assert listed.status_code == 200, listed.text
    load = Load(base, key)
    load.start()
    await asyncio.to_thread(pg.stop)
    for refused in (await ask(base, unverified)) + (await ask(base, sliceless)):
        assert_openai_error(refused, status=503, code="dependency_unavailable", type_="service_unavailable")
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {token}"}) as api:
        projects = await api.get("/api/v1/projects")
    assert projects.status_code == 503 and projects.headers["retry-after"] == "5", projects.text
    assert projects.json()["error"]["code"] == "dependency_unavailable", projects.text
    down = await until(lambda: healthz(base), lambda h: h.get("dependencies", {}).get("database") == "down")
    assert down["status"] == "degraded", down
    assert dependency_gauge(base, "database") == 0
    await asyncio.sleep(3)  # the load goes on, well past key_cache_s: from stale entries
    during = len(load.outcomes)
    await asyncio.to_thread(pg.start)
    up = await until(lambda: healthz(base), lambda h: h["dependencies"]["database"] == "ok")
    assert up["status"] == "ok", up
    assert dependency_gauge(base, "database") == 1
    outcomes = await load.stop()
    assert during >= 20, f"only {during} requests during the outage"
    assert [o for o in outcomes if o.status != 200] == []
    after = await ask(base, unverified) + await ask(base, sliceless)
    assert [o.status for o in after] == [200, 200], after
    return len(warm) + len(outcomes) + 1  # and the unverified key's; the sliceless key's is another project's


@pytest.mark.parametrize("mode", ["local", "refuse"])
def test_redis_outage_rate_limited_keys(mode, tmp_path):
    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    try:
        _redis_outage(mode, tmp_path, redis_server)
    finally:
        redis_server.stop()


def _redis_outage(mode: str, tmp_path: Path, redis_server: PrivateRedis) -> None:
    database_url = f"sqlite:///{tmp_path / 'jaif.db'}"
    env = server_env(
        tmp_path, database_url, JAIF_REDIS_URL=redis_server.url, JAIF_METERING__RATELIMIT_ON_OUTAGE=mode
    )
    with upstream(base_env()) as (up, _):
        platform = provision(database_url, upstream=up, quota=10_000_000, rpm=10_000)
        small = add_key(platform, rpm_limit=3)
        unlimited = add_key(platform)
        log = tmp_path / "serve.log"
        with logged_server(env, log) as base:
            answered = asyncio.run(_redis_down(mode, base, redis_server, platform.key, small, unlimited))
        assert_outage_logged(log, "redis")
    assert books(platform).records == answered


async def _redis_down(mode: str, base: str, redis_server: PrivateRedis, key: str, small: str, unlimited: str) -> int:
    warm = await ask(base, key, 2) + await ask(base, unlimited)
    assert [o.status for o in warm] == [200] * 3, warm
    await asyncio.to_thread(redis_server.stop)
    load = Load(base, key)
    load.start()
    await asyncio.sleep(2)
    outcomes = await load.stop()
    assert len(outcomes) >= 10, outcomes
    answered = len(warm)
    if mode == "local":
        assert [o for o in outcomes if o.status != 200] == []
        # The process's own window still limits: 3 requests a minute, the fourth is refused.
        await asyncio.to_thread(avoid_window_edge)
        limited = await ask(base, small, 4)
        assert [o.status for o in limited[:3]] == [200] * 3, limited
        assert_openai_error(limited[3], status=429, code="rate_limit_exceeded", type_="rate_limit_error")
        answered += len(outcomes) + 3
    else:
        for refused in outcomes + await ask(base, small):
            assert_openai_error(refused, status=503, code="dependency_unavailable", type_="service_unavailable")
    free = await ask(base, unlimited)  # no limit: never asks Redis
    assert free[0].status == 200, free
    down = await until(lambda: healthz(base), lambda h: h.get("dependencies", {}).get("redis") == "down")
    assert (down["status"], down["dependencies"]["database"]) == ("degraded", "ok"), down
    assert dependency_gauge(base, "redis") == 0
    await asyncio.to_thread(redis_server.start)
    up = await until(lambda: healthz(base), lambda h: h["dependencies"]["redis"] == "ok")
    assert up["status"] == "ok", up
    assert dependency_gauge(base, "redis") == 1
    again = await ask(base, key)
    assert again[0].status == 200, again
    return answered + 2
