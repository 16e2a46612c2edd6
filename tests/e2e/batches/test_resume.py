"""A server stopped in the middle of a batch, and started again: the batch resumes where it stopped,
every line answered exactly once, no line run (or charged) twice."""

from __future__ import annotations

import signal
from collections import Counter

import openai
import pytest
from sqlalchemy import select

from jaif.batches.models import Batch
from jaif.db.engine import make_engine, make_session_factory
from tests.e2e.batches.conftest import (
    FAST_BATCHES,
    chat_line,
    ended,
    needs_models,
    results,
    upload,
    usage_rows,
    wait_batch,
)
from tests.support.gateway import create_key, project_id, seed_builtin_models
from tests.support.procs import JAIF, free_port, started, stop, wait_for

pytestmark = needs_models

LINES = 16


def _batch_row(database_url: str, batch_id: str) -> Batch:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            row = session.scalar(select(Batch).where(Batch.id == batch_id))
            assert row is not None
            return row
    finally:
        engine.dispose()


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_batch_resumes_after_a_restart_and_no_line_runs_twice(module_env, how):
    env = {**module_env, **FAST_BATCHES, "JAIF_BATCHES__LEASE_S": "3"}
    db = env["JAIF_DATABASE_URL"]
    seed_builtin_models(db)
    project = f"resume-{how}"
    key = create_key(db, project=project)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [JAIF, "serve", "--port", str(port)]
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)
    lines = [chat_line(f"r{i}", f"Count from {i} to {i + 20}.", max_tokens=16) for i in range(LINES)]

    with started(argv, env, base + "/healthz", timeout=120) as proc:
        batch = client.batches.create(input_file_id=upload(client, lines), endpoint="/v1/chat/completions",
                                      completion_window="24h")  # fmt: skip
        wait_batch(client, batch.id, lambda b: b.request_counts.completed >= 3)
        stop(proc, sig=signal.SIGTERM if how == "stop" else signal.SIGKILL)
    row = _batch_row(db, batch.id)
    assert row.status == "in_progress" and row.completed < LINES, (row.status, row.completed)
    if how == "stop":
        assert row.runner is None  # given back at once: a server started now takes it over

    with started(argv, env, base + "/healthz", timeout=120):
        batch = wait_batch(client, batch.id, ended)
        assert batch.status == "completed"
        output, errors = results(client, batch.output_file_id), results(client, batch.error_file_id)
    # Every line exactly once in the results.
    assert Counter(r["custom_id"] for r in output + errors) == Counter(f"r{i}" for i in range(LINES))
    assert (batch.request_counts.completed, batch.request_counts.failed) == (len(output), len(errors))
    pid = project_id(db, project)
    rows = wait_for(lambda: usage_rows(db, pid), lambda r: len(r) >= len(output), timeout=15)
    ok = [r for r in rows if r.status == "ok"]
    if how == "stop":
        # Nothing abandoned (the lines under way finished before the server stopped): every line answered,
        # and charged once, with the answers' tokens.
        assert errors == [] and len(output) == LINES
        assert len(rows) == len(ok) == LINES, Counter(r.status for r in rows)
        assert sum(r.total_tokens for r in ok) == sum(o["response"]["body"]["usage"]["total_tokens"] for o in output)
    else:
        # A hard kill: the lines under way then (at most max_in_flight_per_batch, 2) are not sent again; they
        # end as "interrupted". No line ran twice: at most one usage record per line.
        assert len(errors) <= 2 and {e["error"]["code"] for e in errors} <= {"interrupted"}, errors
        # The usage records a killed server had not flushed yet (metering.flush_interval_s: the gateway's own
        # durability, for every request) are lost with it: a line answered just before the kill may go
        # uncharged, never charged twice.
        statuses = Counter(r.status for r in rows)
        assert len(output) - 2 <= len(ok) <= len(output) + len(errors) and len(rows) <= LINES, statuses
