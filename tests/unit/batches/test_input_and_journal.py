"""A batch file's check names the wrong line; the journal of results survives a write cut off by a crash."""

from __future__ import annotations

import orjson
import pytest

from jaif.batches.input import check_input, read_lines
from jaif.batches.journal import Journal
from jaif.errors import InvalidRequest


def line(custom_id: str, **body) -> bytes:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}) + b"\n"


def refusal(tmp_path, content: bytes, **limits) -> str:
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    with pytest.raises(InvalidRequest) as refused:
        check_input(path, max_lines=limits.get("max_lines", 100), max_line_bytes=limits.get("max_line_bytes", 4096))
    assert refused.value.param == "file"
    return refused.value.message


def test_each_kind_of_wrong_line_is_named(tmp_path):
    assert refusal(tmp_path, line("a") + b"{nope\n").startswith("Line 2 of the batch file: not valid JSON")
    assert "Line 3" in refusal(tmp_path, line("a") + b"\n" + b"[1]\n")  # blank lines count, and are skipped
    assert "unique" in refusal(tmp_path, line("a") + line("a"))
    assert "'method'" in refusal(tmp_path, line("a").replace(b'"POST"', b'"GET"'))
    assert "unknown field 'extra'" in refusal(tmp_path, orjson.dumps({"custom_id": "a", "extra": 1}) + b"\n")
    assert "stream" in refusal(tmp_path, line("a", stream=True))
    assert "max_tokens" in refusal(tmp_path, line("a", max_tokens="many"))
    assert "at most 2 requests" in refusal(tmp_path, line("a") + line("b") + line("c"), max_lines=2)
    assert "longer than the limit of 100 bytes" in refusal(tmp_path, line("a", x="y" * 200), max_line_bytes=100)
    assert "no request" in refusal(tmp_path, b"\n\n")


def test_a_good_file(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(line("a") + b"\n" + line("b", max_tokens=3))
    assert check_input(path, max_lines=2, max_line_bytes=4096) == 2
    assert [(x.number, x.custom_id) for x in read_lines(path, max_line_bytes=4096)] == [(1, "a"), (3, "b")]


def test_the_journal_resumes_and_drops_a_torn_last_line(tmp_path):
    journal = Journal(tmp_path)
    journal.write({"custom_id": "a", "response": {}}, ok=True)
    journal.write({"custom_id": "b", "error": {}}, ok=False)
    journal.close()
    with open(journal.output, "ab") as f:
        f.write(b'{"custom_id": "c", "resp')  # the crash came mid-write
    again = Journal(tmp_path)
    assert again.done == {"a", "b"} and (again.completed, again.failed) == (1, 1)
    again.write({"custom_id": "c", "response": {}}, ok=True)
    again.close()
    assert [orjson.loads(x)["custom_id"] for x in journal.output.read_bytes().splitlines()] == ["a", "c"]


def test_a_line_started_and_not_done_is_interrupted(tmp_path):
    journal = Journal(tmp_path)
    journal.write_many([({"custom_id": "a"}, "started"), ({"custom_id": "b"}, "started")])
    journal.write({"custom_id": "a", "response": {}}, ok=True)
    journal.close()
    again = Journal(tmp_path)  # the server died with "b" under way
    assert again.interrupted == {"b"} and again.done == {"a"}
