"""Clients that hang up, through a real `jaif serve`: the gateway sees the disconnect (ASGI's
http.disconnect, as uvicorn drops what is sent after it without raising), closes the upstream connection
at once (which makes an engine stop generating) and records the request as cancelled, charged for what
was generated until then. A stream that dies mid-way still tells a client that asked for include_usage
what it was charged. A body cut off by a disconnect is not served."""

from __future__ import annotations

import json
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from tests.support.databases import one_database
from tests.support.gateway import FAST_ROUTING, add_model, create_key, records_after, wait_served
from tests.support.openai_schema import assert_valid
from tests.support.procs import free_port, server, started, upstream, wait_for

pytestmark = one_database()
MESSAGES = [{"role": "user", "content": "tell me a story"}]
CHUNKS, CHUNK_MS = 40, 50  # the streams: 40 chunks 50 ms apart (2 s), cut by their clients after 10
CUT_AFTER, STREAMS = 10, 10
ANSWER_MS = 5000  # a plain answer takes this long; its client gives up after CLIENT_TIMEOUT_S
CLIENT_TIMEOUT_S = 1.0
BREAK_AFTER = 3


@pytest.fixture(scope="module")
def gateway(module_env, tmp_path_factory):
    env = {**module_env, **FAST_ROUTING}
    db = env["JAIF_DATABASE_URL"]
    key = create_key(db, project="hangups")
    # One token per word of the stand-ins' text ("tok0 tok1 ..."), so charges can be checked exactly.
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, **{f"tok{i}": i + 1 for i in range(64)}}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer_json = str(tmp_path_factory.mktemp("tokenizer") / "tokenizer.json")
    tokenizer.save(tokenizer_json)
    port = free_port()
    recording_argv = [
        sys.executable, "-m", "tests.support.recording_upstream", "--port", str(port),
        "--chunks", str(CHUNKS), "--chunk-ms", str(CHUNK_MS), "--answer-ms", str(ANSWER_MS),
    ]  # fmt: skip
    with (
        started(recording_argv, env, f"http://127.0.0.1:{port}/v1/models"),
        upstream(env, "--break-after", str(BREAK_AFTER), "--tokens", "8") as (breaking, _),
        upstream(env) as (whole, _),
        server(env) as base,
    ):
        recording = f"http://127.0.0.1:{port}/v1"
        for name, url in {
            "abandoned-stream": recording, "abandoned-plain": recording, "dies-midway": breaking, "cut-body": whole,
            "abandoned-response": recording,
        }.items():
            add_model(db, name, [url], tokenizer=tokenizer_json)
            wait_served(base, name, replicas=1)
        yield SimpleNamespace(base=base, key=key, db=db, stats=f"http://127.0.0.1:{port}/stats")


def client_of(gateway, *, timeout: float = 15.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=gateway.key, max_retries=0, timeout=timeout)


def upstream_requests(gateway, *, stream: bool) -> list[dict]:
    """What the recording stand-in saw: its POSTs of this kind, each with when it stopped and why."""
    return [r for r in httpx.get(gateway.stats, timeout=5).json() if r["stream"] is stream]


def test_clients_that_hang_up_stop_their_streams_upstream_and_pay_for_what_they_got(gateway):
    def read_then_hang_up(_: int) -> tuple[float, list[str]]:
        with client_of(gateway) as client:
            stream = client.chat.completions.create(
                model="abandoned-stream", messages=MESSAGES, max_tokens=CHUNKS, stream=True
            )
            received = []
            for chunk in stream:
                received.append(chunk.choices[0].delta.content)
                if len(received) == CUT_AFTER:
                    break
            stream.close()  # the connection is closed: the rest of the answer is never read
            return time.time(), received

    with ThreadPoolExecutor(STREAMS) as pool:
        clients = list(pool.map(read_then_hang_up, range(STREAMS)))
    assert all(len(received) == CUT_AFTER for _, received in clients)
    last_left = max(left for left, _ in clients)

    seen = wait_for(
        lambda: upstream_requests(gateway, stream=True),
        lambda r: len(r) == STREAMS and all(s["ended"] for s in r),
        timeout=30,
    )
    assert len(seen) == STREAMS
    for stream in seen:
        # Closed by the gateway within a second of its client leaving, not read to its 40th chunk (2 s).
        assert stream["closed_early"], stream
        assert stream["ended"] - last_left < 1.0, (stream, last_left)
        assert stream["chunks"] < CHUNKS // 2, stream

    records = records_after(gateway.db, model="abandoned-stream", count=STREAMS)
    for record in records:
        assert (record.status, record.status_code, record.stream) == ("cancelled", 499, True)
        # Charged for the chunks read from the upstream until the cancel (counted: it sent no usage yet),
        # which is what reached the client, give or take the few in flight when it hung up.
        assert record.usage_source == "tokenizer"
        assert CUT_AFTER <= record.completion_tokens <= CUT_AFTER + 5, record.completion_tokens
        assert record.prompt_tokens > 0


def test_a_client_that_hangs_up_on_a_plain_request_stops_it_upstream(gateway):
    with client_of(gateway, timeout=CLIENT_TIMEOUT_S) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="abandoned-plain", messages=MESSAGES, max_tokens=5)
    left = time.time()

    seen = wait_for(
        lambda: upstream_requests(gateway, stream=False),
        lambda r: len(r) == 1 and r[0]["ended"],
        timeout=ANSWER_MS / 1000 + 10,
    )
    assert len(seen) == 1
    (request,) = seen
    assert request["closed_early"], request  # not answered after 5 s to a client long gone
    assert request["ended"] - left < 1.0, (request, left)

    (record,) = records_after(gateway.db, model="abandoned-plain", count=1)
    assert (record.status, record.status_code, record.stream) == ("cancelled", 499, False)
    # The prompt, counted; what the engine generated before it saw the close is not known: not charged.
    assert record.usage_source == "tokenizer"
    assert record.prompt_tokens > 0 and record.completion_tokens == 0


def test_a_stream_that_dies_midway_reports_the_usage_of_what_was_delivered(gateway):
    chunks = []
    with client_of(gateway) as client, pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in client.chat.completions.create(
            model="dies-midway", messages=MESSAGES, max_tokens=8, stream=True, stream_options={"include_usage": True}
        ):
            chunks.append(chunk)
    assert "".join(c.choices[0].delta.content for c in chunks if c.choices) == "tok0 tok1 tok2"
    last = chunks[-1]  # the usage chunk comes before the error event, as it comes before [DONE] otherwise
    assert last.choices == [] and last.usage is not None, last
    assert last.usage.completion_tokens == BREAK_AFTER
    assert last.usage.total_tokens == last.usage.prompt_tokens + BREAK_AFTER
    assert (last.id, last.model, last.object) == (chunks[0].id, chunks[0].model, "chat.completion.chunk")
    assert_valid(last.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")

    (record,) = records_after(gateway.db, model="dies-midway", count=1)
    assert record.status == "error"
    assert (record.prompt_tokens, record.completion_tokens) == (last.usage.prompt_tokens, BREAK_AFTER)


def test_a_body_cut_off_by_a_disconnect_is_not_served(gateway):
    body = json.dumps({"model": "cut-body", "messages": MESSAGES, "max_tokens": 3}).encode()
    where = urlsplit(gateway.base)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {where.netloc}\r\nauthorization: Bearer {gateway.key}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body) + 64}\r\n\r\n"
    )
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)  # valid JSON, but 64 bytes short of what the head announced
        time.sleep(0.5)  # let the server read this part before the client hangs up (nothing to wait for)

    # A whole request after it: by the time its record is written, the cut one's would have been.
    with client_of(gateway) as client:
        client.chat.completions.create(model="cut-body", messages=MESSAGES, max_tokens=2)
    (record,) = records_after(gateway.db, model="cut-body", count=1)
    assert (record.status, record.completion_tokens) == ("ok", 2)


def test_a_client_that_hangs_up_on_a_responses_stream_stops_it_upstream(gateway):
    """POST /v1/responses streams through the same relay: the same hang-up, the same charge; nothing stored."""
    before = len(upstream_requests(gateway, stream=True))
    with client_of(gateway) as client:
        stream = client.responses.create(model="abandoned-response", input="tell me a story", stream=True)
        deltas = []
        for event in stream:
            if event.type == "response.created":
                response_id = event.response.id
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
                if len(deltas) == CUT_AFTER:
                    break
        stream.close()
        left = time.time()
        seen = wait_for(lambda: upstream_requests(gateway, stream=True)[before:], lambda r: r and r[0]["ended"],
                        timeout=30)  # fmt: skip
        assert len(seen) == 1 and seen[0]["closed_early"] and seen[0]["ended"] - left < 1.0, (seen, left)
        (record,) = records_after(gateway.db, model="abandoned-response", count=1)
        assert (record.status, record.status_code, record.stream, record.endpoint) == (
            "cancelled", 499, True, "chat.completions"
        )  # fmt: skip
        assert CUT_AFTER <= record.completion_tokens <= CUT_AFTER + 5, record.completion_tokens
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(response_id)


def test_a_responses_stream_that_dies_midway_ends_failed(gateway):
    with client_of(gateway) as client:
        events = list(client.responses.create(model="dies-midway", input="tell me a story", stream=True))
        assert [event.type for event in events[-2:]] == ["error", "response.failed"]
        assert "mid-stream" in events[-2].message
        deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
        assert len(deltas) == BREAK_AFTER
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(events[0].response.id)
