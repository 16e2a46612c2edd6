"""Per-key rate limits across two real `jaif serve` processes: requests per minute and tokens per
minute answer 429 rate_limit_exceeded (OpenAI shape, Retry-After) once the key's minute is used up,
whichever process a request reaches. With the database limiter (SQLite; PostgreSQL where
JAIF_TEST_DATABASE_URL is set) and with Redis (where JAIF_TEST_REDIS_URL is set).

Every test uses keys of its own (fresh API key ids), so runs sharing one Redis cannot collide.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import uuid

import pytest
import redis

from jaif.access import service as access
from jaif.db.engine import make_engine, make_session_factory, transaction
from tests.support.metered import (
    Platform,
    assert_openai_error,
    avoid_window_edge,
    burst,
    provision,
    redis_url,
    sequential,
    usage_report,
)
from tests.support.procs import free_port, server, stop, upstream, wait_for

LIMITERS = ["database", pytest.param("redis", marks=pytest.mark.redis)]
# Each request reserves 34 tokens against the tpm limit (prompt bound 26 + max_tokens 8) and, once
# answered, is charged what it used: 4 prompt + 8 completion = 12.
MAX_TOKENS = 8


@pytest.fixture(params=LIMITERS)
def limiter_env(request, jaif_env, database_url):
    if request.param == "redis":
        if not database_url.startswith("sqlite"):
            pytest.skip("the Redis limiter does not depend on the database; tested on SQLite")
        return {**jaif_env, "JAIF_REDIS_URL": redis_url()}
    return jaif_env


def add_key(platform: Platform, *, rpm: int | None = None, tpm: int | None = None) -> str:
    engine = make_engine(platform.url)
    try:
        with transaction(make_session_factory(engine)) as session:
            _key, secret = access.create_api_key(
                session=session, project_name=platform.project, name=uuid.uuid4().hex, rpm_limit=rpm, tpm_limit=tpm
            )
        return secret
    finally:
        engine.dispose()


def test_rpm_and_tpm_hold_across_two_servers(limiter_env, database_url):
    env = limiter_env
    with upstream(env) as (up, _):
        platform = provision(database_url, upstream=up, rpm=5)
        tpm_key = add_key(platform, tpm=100)
        with server(env) as a, server(env) as b:
            avoid_window_edge()
            # 12 at once, spread over both servers: exactly 5 get through in this minute.
            outcomes = asyncio.run(burst([a, b], platform.key, 12, max_tokens=MAX_TOKENS, streams=False))
            assert sum(o.status == 200 for o in outcomes) == 5
            for o in outcomes:
                if o.status != 200:
                    assert_openai_error(o, status=429, code="rate_limit_exceeded", type_="rate_limit_error")
            assert "5 requests" in next(o for o in outcomes if o.status != 200).error["error"]["message"]

            # tpm 100: request k is admitted while 12 k (used so far) + 34 (its reservation) <= 100.
            got = sequential([a, b], tpm_key, 7, max_tokens=MAX_TOKENS)
            assert [o.status for o in got] == [200] * 6 + [429]
            assert_openai_error(got[-1], status=429, code="rate_limit_exceeded", type_="rate_limit_error")
            # Refused requests cost nothing: 72 used, a smaller request (26 + 1 reserved) still fits.
            small = sequential([b], tpm_key, 1, max_tokens=1)
            assert small[0].status == 200, small
            # One that may need more than a minute's tokens is refused outright, saying why.
            big = sequential([a], tpm_key, 1, max_tokens=200)
            assert_openai_error(big[0], status=429, code="rate_limit_exceeded", type_="rate_limit_error")
            assert "more than this key's limit of 100 tokens per minute" in big[0].error["error"]["message"]
    # Every answered request, on either server, was metered (rate-limited ones were not).
    report = usage_report(env, platform)
    assert report["requests"] == 5 + 6 + 1
    assert report["total_tokens"] == 5 * 12 + 6 * 12 + 5


def test_requests_the_quota_refuses_do_not_use_up_the_rate_limit(limiter_env, database_url):
    """The allowance is checked before the key's minute: a request refused for quota counts against
    neither rpm nor tpm, so a client that lowers max_tokens is not then refused for a rate limit."""
    env = limiter_env
    with upstream(env) as (up, _):
        # 40 tokens: the first request reserves 34 and uses 12, leaving 28; 34 no longer fits, 27 does.
        platform = provision(database_url, upstream=up, quota=40, rpm=3, tpm=100)
        with server(env) as base:
            avoid_window_edge()
            first = sequential([base], platform.key, 1, max_tokens=MAX_TOKENS)
            assert first[0].status == 200, first
            refused = sequential([base], platform.key, 5, max_tokens=MAX_TOKENS)
            for outcome in refused:
                assert_openai_error(outcome, status=429, code="insufficient_quota", type_="insufficient_quota")
            # 1 + 5 requests and 34 + 5 x 34 tokens would be past rpm 3 and tpm 100 had the refused counted.
            small = sequential([base], platform.key, 1, max_tokens=1)
            assert small[0].status == 200, small
    # Only the two answered requests were metered: 12 + (4 prompt + 1 completion) tokens.
    report = usage_report(env, platform)
    assert (report["requests"], report["total_tokens"]) == (2, 17)


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test's own (it gets killed): redis-server on a free port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_for(lambda: _pings(client), bool, timeout=10)
        yield url, proc
    finally:
        client.close()
        stop(proc, sig=signal.SIGKILL)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_losing_redis_after_admission_loses_no_usage(jaif_env, database_url, private_redis):
    """A request admitted by the Redis limiter whose Redis then goes away still answers 200 and is
    metered: the limiter's end-of-request adjustment is best effort, the usage record and the quota
    books are not."""
    if not database_url.startswith("sqlite"):
        pytest.skip("does not depend on the database; tested on SQLite")
    url, redis_proc = private_redis
    env = {**jaif_env, "JAIF_REDIS_URL": url}
    with upstream(env, "--delay-ms", "1500") as (up, _):
        platform = provision(database_url, upstream=up, quota=10_000, tpm=10_000)
        with server(env) as base:

            async def run() -> list:
                request = asyncio.create_task(burst([base], platform.key, 1, max_tokens=MAX_TOKENS, streams=False))
                await asyncio.sleep(0.7)  # admitted; the upstream is still thinking
                stop(redis_proc, sig=signal.SIGKILL)
                return await request

            [outcome] = asyncio.run(run())
            assert outcome.status == 200, outcome
    report = usage_report(env, platform)
    assert (report["requests"], report["total_tokens"], report["errors"]) == (1, 12, 0)
    assert (report["tokens_spent"], report["tokens_leased"]) == (12, 0)
