"""A revoked API key stops working at once where it was revoked, and on every other gateway through Redis.

The servers trust a looked-up key for 60 s here (JAIF_INFERENCE__KEY_CACHE_S), so a refusal seen within
seconds can only come from the revocation reaching the server, not from its cache running out.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from tests.support.api import bearer, openai_error
from tests.support.gateway import add_model, create_key, operator_token, project_id, wait_served
from tests.support.metered import redis_url
from tests.support.procs import free_port, jaif, server, upstream, wait_for

CACHE = {"JAIF_INFERENCE__KEY_CACHE_S": "60"}
HI = [{"role": "user", "content": "hi"}]
# Far below the 60 s cache; in practice a revocation arrives in milliseconds (the tests print it).
DEADLINE_S = 5.0


def chat(base: str, key: str) -> httpx.Response:
    return httpx.post(base + "/v1/chat/completions", json={"model": "m", "messages": HI, "max_tokens": 2},
                      headers=bearer(key), timeout=10)


def refused_after(bases: list[str], key: str, *, since: float, timeout: float = DEADLINE_S) -> float:
    """Seconds from ``since`` until every server in ``bases`` refuses ``key`` as revoked (checked as it
    happens, every 5 ms); fails past ``timeout``."""
    pending = list(bases)
    while pending and time.monotonic() - since < timeout:
        pending = [b for b in pending if chat(b, key).status_code != 401]
        if pending:
            time.sleep(0.005)
    elapsed = time.monotonic() - since
    assert not pending, f"{pending} still accept the revoked key after {elapsed:.1f} s"
    for base in bases:
        openai_error(chat(base, key), 401, code="revoked_api_key")
    return elapsed


def revoke_through_api(base: str, token: str, project: str, key: str) -> None:
    response = httpx.delete(f"{base}/api/v1/projects/{project}/keys/{key[:13]}", headers=bearer(token), timeout=10)
    assert response.status_code == 204, response.text


@pytest.fixture
def setup(jaif_env, test_databases):
    env = {**jaif_env, **CACHE}
    test_databases.migrate(env["JAIF_DATABASE_URL"])
    db = env["JAIF_DATABASE_URL"]
    keys = [create_key(db, project="rev")]
    with upstream(env) as (url, _):
        add_model(db, "m", [url])
        yield env, db, url, keys


def test_revocation_through_the_api_holds_at_once_in_that_server(setup):
    env, db, _url, [key] = setup
    token = operator_token(db)
    with server(env) as base:
        wait_served(base, "m", replicas=1)
        assert chat(base, key).status_code == 200  # now in the server's key cache, for 60 s
        revoke_through_api(base, token, project_id(db, "rev"), key)
        # The very next request: no waiting, no Redis.
        openai_error(chat(base, key), 401, code="revoked_api_key")
        openai_error(httpx.get(base + "/v1/models", headers=bearer(key), timeout=10), 401, code="revoked_api_key")


@pytest.mark.redis
def test_revocation_reaches_every_gateway_through_redis(setup):
    """Two `jaif serve` on one database: a key revoked through one (its API), or by the CLI, is refused
    by both well within the 60 s they would otherwise trust it."""
    env, db, _url, [key] = setup
    env = {**env, "JAIF_REDIS_URL": redis_url()}
    by_cli = create_key(db, project="rev-cli")
    token = operator_token(db)
    with server(env) as one, server(env) as two:
        for base in (one, two):
            wait_served(base, "m", replicas=1)
            for k in (key, by_cli):
                assert chat(base, k).status_code == 200
        revoke_through_api(one, token, project_id(db, "rev"), key)
        since = time.monotonic()  # the revocation is committed and announced when the DELETE returns
        print(f"API revocation reached the other server after {refused_after([two], key, since=since):.3f} s")
        openai_error(chat(one, key), 401, code="revoked_api_key")
        jaif(env, "key", "revoke", by_cli[:13])
        since = time.monotonic()
        print(f"CLI revocation reached both servers within {refused_after([one, two], by_cli, since=since):.3f} s")


@pytest.mark.redis
def test_revocations_missed_while_redis_was_down_hold_once_it_is_back(setup, tmp_path):
    """A Redis of this test's own, stopped and started again: the gateway reconnects, and since what
    was announced meanwhile is lost, starts its key cache afresh."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    env, _db, _url, [key] = setup
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path)]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ping = [shutil.which("redis-cli") or "redis-cli", "-p", str(port), "ping"]
        up = wait_for(lambda: subprocess.run(ping, capture_output=True, text=True).stdout.strip(),
                      lambda out: out == "PONG", timeout=10)
        assert up == "PONG", "the test's Redis did not start"
        return proc

    env = {**env, "JAIF_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    redis = start()
    try:
        with server(env) as base:
            wait_served(base, "m", replicas=1)
            assert chat(base, key).status_code == 200
            redis.terminate()
            redis.wait(10)
            # Announced to nobody: Redis is down. The revocation itself is committed all the same.
            result = jaif(env, "key", "revoke", key[:13])
            assert "revoked" in result.stdout
            assert chat(base, key).status_code == 200  # still trusted from the cache, for now
            redis = start()
            since = time.monotonic()
            elapsed = refused_after([base], key, since=since, timeout=15.0)  # reconnecting backs off to 5 s
            print(f"refused {elapsed:.2f} s after Redis came back")
    finally:
        redis.terminate()
        redis.wait(10)
