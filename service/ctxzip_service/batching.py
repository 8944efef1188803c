"""Micro-batching: concurrent requests to one compressor merged into one call.

The interface a compressor opts into is one method (the one `ExtractiveCompressor` has):

    compress_many(items: Sequence[tuple[inputs, query]], budget: Sequence[Budget]) -> list[CompressionResult]

one (documents, query) pair and one budget per request, one result per request, in order. A model-based
compressor implements it by scoring the units of every request in shared batched forwards. If the call
fails as a whole (one request in the batch had an impossible budget, say), the batch is run again one
request at a time so each caller gets its own answer or its own error. A compressor without
`compress_many` is always run one request at a time.

Requests queue on the event loop; one worker per compressor takes up to `max_batch` of them (waiting
`max_wait_s` for more to arrive when the queue is short) and runs the batch in a worker thread. While a
batch runs, new arrivals queue, so under load batches fill by themselves.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Sequence

import anyio
import anyio.to_thread

from ctxzip.document import CompressionResult


def supports_batching(compressor: Any) -> bool:
    from ctxzip.compressors.base import Compressor, shares_forwards

    if isinstance(compressor, Compressor):
        return shares_forwards(compressor)
    return callable(getattr(compressor, "compress_many", None))


def run_batch(compressor: Any, requests: Sequence[dict]) -> list[CompressionResult | BaseException]:
    """Call `compress_many`; if it fails as a whole (or answers wrongly), fall back to one by one."""
    try:
        results = list(compressor.compress_many(
            [(r["inputs"], r["query"]) for r in requests], [r["budget"] for r in requests]
        ))
        if len(results) == len(requests):
            return results
    except Exception:
        pass
    return [_compress_one(compressor, request) for request in requests]


def _compress_one(compressor: Any, request: dict) -> CompressionResult | BaseException:
    try:
        return compressor.compress(**request)
    except Exception as exc:
        return exc


class MicroBatcher:
    """Queues requests for one compressor and answers each from a shared batched call.

    Up to `limiter.total_tokens` batches run at once (one per compression thread): on a small CPU two
    batches in flight use the cores better than one, and while both run, the next batch fills up.
    """

    def __init__(
        self,
        compressor: Any,
        *,
        max_batch: int,
        max_wait_s: float,
        limiter: anyio.CapacityLimiter,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.compressor = compressor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.limiter = limiter
        self.on_batch = on_batch
        self._pending: list[tuple[dict, asyncio.Future]] = []
        self._worker: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    async def submit(self, request: dict) -> CompressionResult:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                slot = object()
                await self.limiter.acquire_on_behalf_of(slot)  # a free compression thread
                if len(self._pending) < self.max_batch and self.max_wait_s > 0:
                    await asyncio.sleep(self.max_wait_s)  # let requests arriving together join
                # Share what is queued among the threads free now, so no thread idles beside a long batch.
                free = self.limiter.available_tokens + 1
                size = min(self.max_batch, -(-len(self._pending) // free))
                batch = self._pending[:size]
                del self._pending[:size]
                live = [(r, f) for r, f in batch if not f.done()]  # skip callers that gave up
                if not live:
                    self.limiter.release_on_behalf_of(slot)
                    continue
                if self.on_batch:
                    self.on_batch(len(live))
                task = asyncio.create_task(self._run(live, slot))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        finally:
            self._worker = None
            # Only left over when the worker was cancelled: nobody will answer these, so fail them now.
            for _, future in self._pending:
                if not future.done():
                    future.set_exception(RuntimeError("the compressor was shut down"))
            self._pending.clear()

    async def _run(self, live: list[tuple[dict, asyncio.Future]], slot: object) -> None:
        try:
            results = await anyio.to_thread.run_sync(run_batch, self.compressor, [r for r, _ in live])
        except BaseException as exc:  # cancelled at shutdown: nobody else will answer these callers
            for _, future in live:
                if not future.done():
                    future.set_exception(RuntimeError("the compressor was shut down"))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            self.limiter.release_on_behalf_of(slot)
        for (_, future), result in zip(live, results):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
