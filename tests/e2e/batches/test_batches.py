"""The Batch and Files APIs end to end: the `openai` SDK against `jaif serve` on the built-in models.

One server for the module; each test has projects of its own. Batches run in the server's background
(batches/runner.py); the tests poll them as clients do.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import openai
import pytest

from tests.e2e.batches.conftest import (
    FAST_BATCHES,
    MINILM,
    SMOL,
    chat_line,
    ended,
    jsonl,
    needs_models,
    results,
    upload,
    usage_rows,
    wait_batch,
)
from tests.support.api import bearer, openai_error
from tests.support.databases import one_database
from tests.support.gateway import create_key, project_id, seed_builtin_models
from tests.support.openai_schema import assert_valid
from tests.support.procs import server, wait_for

pytestmark = [*needs_models, one_database()]

MAX_FILE_BYTES = 64 * 1024  # small, so that "too large" is cheap to send
MAX_REQUEST_BYTES = 8 * 1024


@pytest.fixture(scope="module")
def gateway(module_env):
    # Requests are limited to 8 KiB here, files to 64 KiB: an upload may be larger than a request.
    env = {**module_env, **FAST_BATCHES, "JAIF_FILES__MAX_BYTES": str(MAX_FILE_BYTES),
           "JAIF_FILES__MAX_PER_PROJECT": "6", "JAIF_INFERENCE__MAX_BODY_BYTES": str(MAX_REQUEST_BYTES)}  # fmt: skip
    db = env["JAIF_DATABASE_URL"]
    seed_builtin_models(db)
    with server(env) as base:
        yield SimpleNamespace(base=base, db=db, env=env)


def client_of(gateway, project: str, *, token_quota: int | None = None) -> openai.OpenAI:
    key = create_key(gateway.db, project=project, token_quota=token_quota)
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=key, max_retries=0, timeout=60)


def test_chat_batch_end_to_end_with_the_sdk(gateway):
    client = client_of(gateway, "sdk")
    lines = [chat_line(f"req-{i}", f"Say the number {i}.") for i in range(4)]
    file = client.files.create(file=("requests.jsonl", jsonl(lines)), purpose="batch")
    assert (file.purpose, file.filename, file.bytes) == ("batch", "requests.jsonl", len(jsonl(lines)))
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"run": "sdk"})  # fmt: skip
    assert batch.status == "validating" and batch.metadata == {"run": "sdk"}
    assert batch.request_counts.total == 4

    batch = wait_batch(client, batch.id, ended)
    assert batch.status == "completed", batch
    assert (batch.request_counts.completed, batch.request_counts.failed) == (4, 0)
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at and batch.error_file_id is None
    output = results(client, batch.output_file_id)
    assert sorted(r["custom_id"] for r in output) == [f"req-{i}" for i in range(4)]
    for record in output:
        assert record["error"] is None and record["id"].startswith("batch_req_")
        assert record["response"]["status_code"] == 200 and record["response"]["request_id"]
        body = record["response"]["body"]
        assert body["object"] == "chat.completion" and body["model"] == SMOL
        assert body["usage"]["completion_tokens"] <= 4

    # Metered exactly: one usage record per line, with the tokens each answer reports.
    pid = project_id(gateway.db, "sdk")
    rows = wait_for(lambda: usage_rows(gateway.db, pid), lambda r: len(r) >= 4, timeout=15)
    assert len(rows) == 4
    answered = sorted(o["response"]["body"]["usage"]["total_tokens"] for o in output)
    assert sorted(r.total_tokens for r in rows) == answered

    # The output file is the project's, listed and retrievable like any other.
    listed = client.files.list()
    assert {f.id for f in listed.data} >= {file.id, batch.output_file_id}
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"
    assert [b.id for b in client.batches.list().data] == [batch.id]


def test_embeddings_batch(gateway):
    client = client_of(gateway, "embed")
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": MINILM, "input": f"document {i}"}} for i in range(3)]  # fmt: skip
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint="/v1/embeddings",
                                  completion_window="24h")  # fmt: skip
    batch = wait_batch(client, batch.id, ended)
    assert batch.status == "completed" and batch.request_counts.completed == 3
    vectors = [r["response"]["body"]["data"][0]["embedding"] for r in results(client, batch.output_file_id)]
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)


def test_a_line_the_model_refuses_goes_to_the_error_file(gateway):
    """A request valid in form but refused when run (a model the project may not use does not exist)
    ends in the error file with its status and OpenAI's error body; the other lines complete."""
    client = client_of(gateway, "mixed")
    lines = [chat_line("good", "Hello"), {**chat_line("bad", "Hello"), "body": {
        "model": "no-such-model", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}}]  # fmt: skip
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint="/v1/chat/completions",
                                  completion_window="24h")  # fmt: skip
    batch = wait_batch(client, batch.id, ended)
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    [error] = results(client, batch.error_file_id)
    assert error["custom_id"] == "bad" and error["response"]["status_code"] == 404
    assert error["response"]["body"]["error"]["code"] == "model_not_found"
    assert [r["custom_id"] for r in results(client, batch.output_file_id)] == ["good"]


def test_quota_runs_out_mid_batch(gateway):
    """The allowance runs out: the lines already answered are kept and charged once; the rest end in
    the error file with insufficient_quota, and the project is charged no more than its allowance."""
    quota = 150
    client = client_of(gateway, "quota", token_quota=quota)
    lines = [chat_line(f"q{i}", "Hi", max_tokens=4) for i in range(12)]
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint="/v1/chat/completions",
                                  completion_window="24h")  # fmt: skip
    batch = wait_batch(client, batch.id, ended)
    assert batch.status == "completed"
    output, errors = results(client, batch.output_file_id), results(client, batch.error_file_id)
    assert 0 < len(output) < 12 and len(output) + len(errors) == 12
    assert (batch.request_counts.completed, batch.request_counts.failed) == (len(output), len(errors))
    assert sorted(r["custom_id"] for r in output + errors) == sorted(f"q{i}" for i in range(12))
    for record in errors:
        assert record["response"] is None and record["error"]["code"] == "insufficient_quota", record
    charged = sum(r["response"]["body"]["usage"]["total_tokens"] for r in output)
    pid = project_id(gateway.db, "quota")
    rows = wait_for(lambda: usage_rows(gateway.db, pid), lambda r: len(r) >= len(output), timeout=15)
    assert len(rows) == len(output) and sum(r.total_tokens for r in rows) == charged <= quota


def test_projects_cannot_see_each_others_files_or_batches(gateway):
    alice, bob = client_of(gateway, "alice"), client_of(gateway, "bob")
    file_id = upload(alice, [chat_line("a", "Hello")])
    batch = alice.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    with httpx.Client(base_url=gateway.base, headers=bearer(bob.api_key), timeout=30) as http:
        for response in (http.get(f"/v1/files/{file_id}"), http.get(f"/v1/files/{file_id}/content"),
                         http.delete(f"/v1/files/{file_id}")):  # fmt: skip
            openai_error(response, 404, code="file_not_found")
        openai_error(http.get(f"/v1/batches/{batch.id}"), 404, code="batch_not_found")
        openai_error(http.post(f"/v1/batches/{batch.id}/cancel"), 404, code="batch_not_found")
        created = http.post("/v1/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                                 "completion_window": "24h"})  # fmt: skip
        openai_error(created, 404, param="input_file_id")
    assert file_id not in {f.id for f in bob.files.list().data}
    assert bob.batches.list().data == []
    assert alice.files.retrieve(file_id).id == file_id  # still there for its owner
    wait_batch(alice, batch.id, ended)


def test_files_list_retrieve_content_delete(gateway):
    client = client_of(gateway, "files")
    lines = [chat_line("x", "Hello")]
    ids = [upload(client, lines) for _ in range(3)]
    assert [f.id for f in client.files.list().data] == ids[::-1]  # newest first
    page = client.files.list(limit=2)
    assert [f.id for f in page.data] == ids[:0:-1] and page.has_more
    assert [f.id for f in client.files.list(limit=2, after=ids[1])] == [ids[0]]
    assert client.files.content(ids[0]).content == jsonl(lines)
    with httpx.Client(base_url=gateway.base, headers=bearer(client.api_key), timeout=30) as http:
        assert_valid(http.get("/v1/files").json(), "ListFilesResponse")  # OpenAI's own document
        assert_valid(http.get(f"/v1/files/{ids[0]}").json(), "OpenAIFile")
        batch = http.post("/v1/batches", json={"input_file_id": ids[1], "endpoint": "/v1/chat/completions",
                                               "completion_window": "24h"}).json()  # fmt: skip
        assert_valid(batch, "Batch")
        assert_valid(http.get("/v1/batches").json(), "ListBatchesResponse")
        wait_batch(client, batch["id"], ended)
        assert_valid(http.get(f"/v1/batches/{batch['id']}").json(), "Batch")
    deleted = client.files.delete(ids[0])
    assert deleted.deleted and deleted.id == ids[0]
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(ids[0])


def test_a_user_data_file_is_any_file_a_job_may_be_given(gateway):
    """Purpose user_data (OpenAI's for files of any use): a job's input, not checked as a batch file."""
    client = client_of(gateway, "inputs")
    data = b"\x00\x01 not JSON at all\n"
    file = client.files.create(file=("weights.bin", data), purpose="user_data")
    assert (file.purpose, file.filename, file.bytes) == ("user_data", "weights.bin", len(data))
    assert client.files.content(file.id).content == data
    assert [f.id for f in client.files.list(purpose="user_data")] == [file.id]
    assert [f.id for f in client.files.list(purpose="batch")] == []
    with httpx.Client(base_url=gateway.base, headers=bearer(client.api_key), timeout=30) as http:
        assert_valid(http.get(f"/v1/files/{file.id}").json(), "OpenAIFile")
        batch = http.post("/v1/batches", json={"input_file_id": file.id, "endpoint": "/v1/chat/completions",
                                               "completion_window": "24h"})  # fmt: skip
        assert batch.status_code == 400, batch.text  # not a batch file


def test_bad_input_is_refused_with_clear_errors(gateway):
    client = client_of(gateway, "bad")
    http = httpx.Client(base_url=gateway.base, headers=bearer(client.api_key), timeout=30)

    def post_file(content: bytes, purpose: str = "batch") -> httpx.Response:
        return http.post("/v1/files", data={"purpose": purpose}, files={"file": ("b.jsonl", content)})

    good = jsonl([chat_line("one", "Hello")])
    error = openai_error(post_file(good + b'{"custom_id": "two", "method": "POST"\n'), 400, code="invalid_batch_line")
    assert "Line 2" in error["message"] and error["param"] == "file"
    error = openai_error(post_file(good + good), 400, code="invalid_batch_line")
    assert "Line 2" in error["message"] and "custom_id" in error["message"]
    wrong_url = {**chat_line("u", "x"), "url": "/v1/images/generations"}
    assert "Line 1" in openai_error(post_file(jsonl([wrong_url])), 400, code="invalid_batch_line")["message"]
    bad_body = {**chat_line("m", "x"), "body": {"model": SMOL, "messages": "not a list"}}
    assert "messages" in openai_error(post_file(jsonl([bad_body])), 400, code="invalid_batch_line")["message"]
    openai_error(post_file(good, purpose="fine-tune"), 400, code="invalid_value", param="purpose")
    openai_error(http.post("/v1/files", data={"purpose": "batch"}), 400)  # no file at all
    unknown = http.post("/v1/files", data={"purpose": "batch", "extra": "1"}, files={"file": ("b.jsonl", good)})
    openai_error(unknown, 400, code="unknown_parameter", param="extra")
    # Too large: refused while it is read (just over the limit), or from its length (far over).
    openai_error(post_file(b" " * (MAX_FILE_BYTES + 1)), 413, code="file_too_large", param="file")
    openai_error(post_file(b" " * (4 * MAX_FILE_BYTES)), 413)

    file_id = client.files.create(file=("b.jsonl", good), purpose="batch").id
    base = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    openai_error(http.post("/v1/batches", json={**base, "endpoint": "/v1/embeddings"}), 400,
                 code="mismatched_endpoint", param="endpoint")  # fmt: skip
    openai_error(http.post("/v1/batches", json={**base, "endpoint": "/v1/images"}), 400, param="endpoint")
    openai_error(http.post("/v1/batches", json={**base, "completion_window": "1h"}), 400, param="completion_window")
    openai_error(http.post("/v1/batches", json={**base, "priority": "high"}), 400, param="priority")
    openai_error(http.post("/v1/batches", json={**base, "input_file_id": "file-nope"}), 404, param="input_file_id")
    http.close()


def test_an_upload_may_be_larger_than_a_request_but_not_a_line(gateway):
    client = client_of(gateway, "large")
    lines = [chat_line(f"l{i}", f"Sentence number {i}.") for i in range(200)]
    assert MAX_REQUEST_BYTES < len(jsonl(lines)) < MAX_FILE_BYTES
    assert client.files.retrieve(upload(client, lines)).bytes == len(jsonl(lines))
    with pytest.raises(openai.BadRequestError) as refused:
        upload(client, [chat_line("big", "x" * MAX_REQUEST_BYTES)])
    assert "Line 1" in refused.value.message and f"{MAX_REQUEST_BYTES} bytes" in refused.value.message


def test_the_count_of_files_is_bounded(gateway):
    client = client_of(gateway, "many")
    for _ in range(6):
        upload(client, [chat_line("x", "Hello")])
    with pytest.raises(openai.BadRequestError) as refused:
        upload(client, [chat_line("x", "Hello")])
    assert refused.value.code == "too_many_files"


def test_cancel(gateway):
    client = client_of(gateway, "cancel")
    lines = [chat_line(f"c{i}", "Write a long story.", max_tokens=32) for i in range(20)]
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint="/v1/chat/completions",
                                  completion_window="24h")  # fmt: skip
    wait_batch(client, batch.id, lambda b: b.request_counts.completed >= 1)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    batch = wait_batch(client, batch.id, ended)
    assert batch.status == "cancelled" and batch.cancelled_at
    done = results(client, batch.output_file_id)
    assert 1 <= len(done) < 20 and batch.request_counts.completed == len(done)
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)
    json.dumps(done)  # the output is plain JSON lines


def test_a_file_name_with_control_characters_is_kept_without_them(gateway):
    """A NUL in the multipart file name was stored as sent, and PostgreSQL refuses a NUL in text: a 500."""
    client = client_of(gateway, "names")
    boundary = b"b0undary"
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in\x00put\x07.jsonl\"\r\n"
            b"Content-Type: application/jsonl\r\n\r\n" + jsonl([chat_line("x", "Hello")]) + b"\r\n--b0undary--\r\n")
    with httpx.Client(base_url=gateway.base, headers=bearer(client.api_key), timeout=30) as http:
        answer = http.post("/v1/files", content=body,
                           headers={"content-type": "multipart/form-data; boundary=" + boundary.decode()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["filename"] == "input.jsonl"
