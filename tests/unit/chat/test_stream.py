"""What the chat says when the gateway refuses a message or a model has yet to start (chat/stream.py)."""

from __future__ import annotations

from types import SimpleNamespace

from jaif.chat.stream import _chunks, _notice, refusal
from jaif.errors import QuotaExceeded, RateLimited, Unavailable


def test_refusals_get_a_headline_the_gateways_message_and_when_to_retry():
    starting = refusal(Unavailable("The model `m` is starting; about 40 s to go.", code="model_starting",
                                   retry_after=40.0))
    assert starting["headline"] == "Not answered yet: the model is still starting."
    assert starting["text"].startswith("The model `m` is starting") and starting["retry_after_s"] == 40.0
    assert refusal(QuotaExceeded("no tokens left"))["headline"] == "Not sent: the project's token allowance is used up."
    limited = refusal(RateLimited("60 requests a minute", retry_after=3.2))
    assert limited["code"] == "rate_limit_exceeded" and limited["retry_after_s"] == 3.2
    assert refusal(Unavailable("no replica"))["headline"] == "Not answered: the model is unavailable."


def _gateway(state: str) -> SimpleNamespace:
    model = SimpleNamespace(deployment={"state": state, "estimated_ready_s": 40.0, "ready_replicas": 0})
    return SimpleNamespace(registry=SimpleNamespace(models={"m": model}))


def test_a_cold_or_starting_model_is_announced_before_the_message_waits_for_it():
    notice = _notice(_gateway("cold"), "m")  # type: ignore[arg-type]
    assert notice is not None
    assert notice["text"] == "The model m is cold: your message waits until it has started (about 40 s)."
    assert _notice(_gateway("starting"), "m")["state"] == "starting"  # type: ignore[arg-type,index]
    assert _notice(_gateway("ready"), "m") is None  # type: ignore[arg-type]


def test_stream_events_are_read_without_done_and_broken_lines():
    event = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: nonsense\n\ndata: [DONE]\n\n'
    assert _chunks(event) == [{"choices": [{"delta": {"content": "a"}}]}]
