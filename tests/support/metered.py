"""Helpers for end-to-end metering tests: a provisioned project on a real database, its books read
straight from the database, `jaif usage --json`, and bursts of concurrent requests through the
official `openai` client that remember exactly what each response said."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass

import openai
import pytest
import redis
from sqlalchemy import func, select

from jaif.access import service as access
from jaif.access.models import Project
from jaif.db.engine import make_engine, make_session_factory, transaction
from jaif.db.migrate import upgrade
from jaif.inference import service as inference
from jaif.metering.models import QuotaLease, UsageRecord
from tests.support.procs import jaif, last_line

MODEL = "fake-chat"
PROMPT = "hi"


@dataclass(frozen=True)
class Platform:
    url: str
    project: str
    project_id: str
    key: str


def provision(
    url: str,
    *,
    upstream: str,
    quota: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
) -> Platform:
    """Migrate the database and create an organisation, a project, a key and the model (in-process:
    five `jaif` invocations would cost seconds per test; the CLI is exercised elsewhere)."""
    upgrade(url)
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        name = f"p-{uuid.uuid4().hex[:8]}"
        with transaction(factory) as session:
            access.create_organisation(session=session, name=f"Org {name}", sector="academia", country="DE")
            project = access.create_project(session=session, name=name, organisation=f"Org {name}", token_quota=quota)
            _key, secret = access.create_api_key(session=session, project_name=name, rpm_limit=rpm, tpm_limit=tpm)
            if inference.list_models(session=session) == []:
                inference.add_model(session=session, name=MODEL, upstreams=[upstream])
        return Platform(url=url, project=name, project_id=project.id, key=secret)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Books:
    token_quota: int | None
    tokens_spent: int
    tokens_leased: int
    lease_rows: int
    records: int
    record_tokens: int


def books(platform: Platform) -> Books:
    """The project's books, read straight from the database (fast enough to poll)."""
    engine = make_engine(platform.url)
    try:
        with engine.connect() as conn:
            quota, spent, leased = conn.execute(
                select(Project.token_quota, Project.tokens_spent, Project.tokens_leased).where(
                    Project.id == platform.project_id
                )
            ).one()
            rows = conn.scalar(select(func.count()).where(QuotaLease.project_id == platform.project_id))
            records, tokens = conn.execute(
                select(func.count(), func.coalesce(func.sum(UsageRecord.total_tokens), 0)).where(
                    UsageRecord.project_id == platform.project_id
                )
            ).one()
    finally:
        engine.dispose()
    return Books(quota, spent, leased, rows, records, tokens)


def usage_report(env: dict[str, str], platform: Platform) -> dict:
    return json.loads(last_line(jaif(env, "usage", "--project", platform.project, "--json")))


@dataclass
class Outcome:
    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stream: bool = False
    retry_after: str | None = None
    error: dict | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


async def one_request(client: openai.AsyncOpenAI, *, max_tokens: int, stream: bool) -> Outcome:
    messages = [{"role": "user", "content": PROMPT}]
    try:
        if stream:
            chunks = await client.chat.completions.create(
                model=MODEL,
                messages=messages,
                max_tokens=max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            usage = None
            async for chunk in chunks:
                usage = chunk.usage or usage
            assert usage is not None, "a stream that asked for usage ended without it"
            return Outcome(200, usage.prompt_tokens, usage.completion_tokens, stream=True)
        reply = await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens)
        return Outcome(200, reply.usage.prompt_tokens, reply.usage.completion_tokens)
    except openai.APIStatusError as exc:
        return Outcome(
            exc.status_code,
            stream=stream,
            retry_after=exc.response.headers.get("retry-after"),
            error=exc.response.json(),
        )


async def burst(bases: list[str], key: str, n: int, *, max_tokens: int, streams: bool = True) -> list[Outcome]:
    """n requests at once, spread round-robin over the servers; every other one streams."""
    clients = [openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60) for base in bases]
    try:
        return list(
            await asyncio.gather(
                *(
                    one_request(clients[i % len(clients)], max_tokens=max_tokens, stream=streams and i % 2 == 1)
                    for i in range(n)
                )
            )
        )
    finally:
        for client in clients:
            await client.close()


def sequential(bases: list[str], key: str, n: int, *, max_tokens: int) -> list[Outcome]:
    """n requests one after another, alternating between the servers."""

    async def run() -> list[Outcome]:
        clients = [openai.AsyncOpenAI(base_url=b + "/v1", api_key=key, max_retries=0, timeout=60) for b in bases]
        try:
            return [
                await one_request(clients[i % len(clients)], max_tokens=max_tokens, stream=False) for i in range(n)
            ]
        finally:
            for client in clients:
                await client.close()

    return asyncio.run(run())


def assert_openai_error(outcome: Outcome, *, status: int, code: str, type_: str) -> None:
    """The OpenAI error shape, the code, and a Retry-After of whole seconds."""
    assert outcome.status == status, outcome
    assert outcome.error is not None and set(outcome.error) == {"error"}, outcome
    assert set(outcome.error["error"]) == {"message", "type", "param", "code"}, outcome
    assert outcome.error["error"]["code"] == code, outcome
    assert outcome.error["error"]["type"] == type_, outcome
    assert outcome.error["error"]["message"], outcome
    assert outcome.retry_after is not None and outcome.retry_after.isdigit(), outcome
    assert int(outcome.retry_after) >= 1, outcome


def redis_url() -> str:
    """JAIF_TEST_REDIS_URL, or skip saying why it cannot be used."""
    url = os.environ.get("JAIF_TEST_REDIS_URL")
    if not url:
        pytest.skip("JAIF_TEST_REDIS_URL is not set (.ci/run sets it to the Redis at 127.0.0.1:6379)")
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {url} is not reachable: {exc}")
    finally:
        client.close()
    return url


def avoid_window_edge(margin_s: float = 8.0) -> None:
    """Rate limits count in fixed one-minute windows: a test whose requests straddle a window's end
    would see the counts reset. Wait for the next window when fewer than margin_s seconds are left."""
    left = 60 - time.time() % 60
    if left < margin_s:
        time.sleep(left + 0.05)
