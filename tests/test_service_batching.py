"""Micro-batching: concurrent requests to a compressor with `compress_many` share batched calls."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ctxzip_service import ServiceSettings, create_app
from tests.support.upstream import CountingCompressor, UvicornThread, register_test_compressors

pytestmark = pytest.mark.timeout(120)

N = 12


def start(micro_batch: bool) -> UvicornThread:
    register_test_compressors()
    settings = ServiceSettings(
        upstream="http://127.0.0.1:9/v1", default_method="test-counting", micro_batch=micro_batch,
        batch_wait_ms=50, max_batch_size=8, cache_size=0, compress_workers=2,
    )
    return UvicornThread(create_app(settings))


def text_for(n: int) -> str:
    return f"request{n} " + " ".join(f"w{n}x{k}" for k in range(200))


async def fire(url: str, bodies: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await asyncio.gather(*(client.post("/v1/compress", json=b) for b in bodies))


def bodies(options: dict | None = None) -> list[dict]:
    return [{"text": text_for(n), "budget": {"tokens": 12}, "options": options or {"delay_s": 0.2}}
            for n in range(N)]


def test_concurrent_requests_are_batched_and_answered_each_with_its_own_result():
    CountingCompressor.reset()
    with start(micro_batch=True) as server:
        responses = asyncio.run(fire(server.url, bodies()))
        metrics = httpx.get(server.url + "/metrics").text
    assert [r.status_code for r in responses] == [200] * N
    for n, response in enumerate(responses):
        result = response.json()
        assert result["text"].startswith(f"request{n} ") and text_for(n).startswith(result["text"])
        assert result["compressed_tokens"] <= 12
    assert sum(CountingCompressor.batches) == N
    assert len(CountingCompressor.batches) < N  # fewer calls than requests...
    assert max(CountingCompressor.batches) > 1  # ...because some calls carried several
    assert max(CountingCompressor.batches) <= 8  # max_batch_size holds
    assert CountingCompressor.singles == []
    assert 'ctxzip_batch_size_count{method="test-counting"}' in metrics


def test_without_micro_batching_each_request_runs_alone():
    CountingCompressor.reset()
    with start(micro_batch=False) as server:
        responses = asyncio.run(fire(server.url, bodies()))
    assert [r.status_code for r in responses] == [200] * N
    assert CountingCompressor.batches == []
    assert len(CountingCompressor.singles) == N


def test_one_bad_request_does_not_fail_its_batch():
    CountingCompressor.reset()
    options = {"delay_s": 0.1, "protection": {"numbers": True}}
    batch = bodies(options)
    batch[3] = {"text": " ".join(str(1000 + k) for k in range(100)), "budget": {"tokens": 2}, "options": options}
    with start(micro_batch=True) as server:
        responses = asyncio.run(fire(server.url, batch))
    codes = [r.status_code for r in responses]
    assert codes[3] == 422 and responses[3].json()["error"]["code"] == "budget_too_small"
    assert codes[:3] + codes[4:] == [200] * (N - 1)
    assert responses[5].json()["text"].startswith("request5 ")
    assert len(CountingCompressor.singles) > 0  # the failed batch was rerun one by one
