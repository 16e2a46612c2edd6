"""The gateway's Prometheus metrics count requests in batches (ops/metrics.py): a batch is applied
FLUSH_AFTER_S after its first request, before every scrape, and when the process closes its metrics."""

from __future__ import annotations

import asyncio

from jaif.ops.metrics import FLUSH_AFTER_S, GatewayMetrics


def requests_total(metrics: GatewayMetrics) -> float | None:
    labels = {"model": "m", "endpoint": "chat.completions", "status": "ok"}
    return metrics.registry.get_sample_value("jaif_requests_total", labels)


def observe(metrics: GatewayMetrics, n: int = 1) -> None:
    for _ in range(n):
        metrics.observe(model="m", endpoint="chat.completions", status="ok", prompt_tokens=3,
                        completion_tokens=2, latency_s=0.01, ttft_s=None)


async def test_a_batch_is_counted_shortly_after_its_first_request():
    metrics = GatewayMetrics()
    observe(metrics, 3)
    assert requests_total(metrics) is None  # queued, not counted yet
    await asyncio.sleep(FLUSH_AFTER_S * 4)
    assert requests_total(metrics) == 3
    assert metrics.registry.get_sample_value("jaif_tokens_total", {"model": "m", "kind": "prompt"}) == 9


async def test_a_scrape_counts_what_is_queued_and_the_timer_then_adds_nothing_twice():
    metrics = GatewayMetrics()
    observe(metrics, 2)
    assert b'jaif_requests_total{endpoint="chat.completions",model="m",status="ok"} 2.0' in metrics.render()
    await asyncio.sleep(FLUSH_AFTER_S * 4)
    assert requests_total(metrics) == 2


async def test_closing_counts_what_is_still_queued():
    metrics = GatewayMetrics()
    observe(metrics, 4)
    metrics.close()
    assert requests_total(metrics) == 4
