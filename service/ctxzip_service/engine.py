"""Compressors loaded once and shared, the result cache, and the way to them (batched or one by one).

CPU-heavy work (model loading, compression) runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from ctxzip.budget import Budget, get_token_counter
from ctxzip.document import CompressionResult, Document
from ctxzip.errors import CtxzipError
from ctxzip.protect import Protection
from ctxzip.registry import available_methods, create_compressor
from ctxzip_service.batching import MicroBatcher, supports_batching
from ctxzip_service.cache import ResultCache, cache_key
from ctxzip_service.errors import ServiceError, from_ctxzip_error
from ctxzip_service.metrics import Metrics
from ctxzip_service.schemas import BudgetIn
from ctxzip_service.settings import ServiceSettings


@dataclass
class Loaded:
    compressor: Any
    batcher: MicroBatcher | None  # None: the compressor has no compress_many, or batching is off


def _build_options(options: dict[str, Any]) -> dict[str, Any]:
    """JSON options → constructor arguments (a `protection` object becomes a `Protection`)."""
    built = dict(options)
    protection = built.get("protection")
    if isinstance(protection, dict):
        try:
            built["protection"] = Protection(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in protection.items()}
            )
        except TypeError as exc:
            raise ServiceError(400, "invalid_option", f"bad protection option: {exc}") from None
    return built


class CompressionEngine:
    def __init__(self, settings: ServiceSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.cache = ResultCache(settings.cache_size)
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._loading: dict[str, asyncio.Future] = {}
        self._limiter: anyio.CapacityLimiter | None = None
        self.ready = not settings.preload
        self._methods: list[str] | None = None
        self.load_error: str | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # created lazily: it needs a running event loop
            self._limiter = anyio.CapacityLimiter(self.settings.compress_workers)
        return self._limiter

    def methods(self, refresh: bool = False) -> list[str]:
        """Installed methods the operator allows; looked up once (it imports nothing but is not free)."""
        if self._methods is None or refresh:
            allowed = self.settings.allowed_methods
            self._methods = [m for m in available_methods() if allowed is None or m in allowed]
        return self._methods

    def loaded(self) -> list[str]:
        return sorted({key.split(" ", 1)[0] for key in self._loaded})

    # -- checks on what a request asks for -------------------------------------------------

    def budget(self, spec: BudgetIn | None) -> Budget:
        tokenizer = (spec.tokenizer if spec else None) or self.settings.default_tokenizer
        if tokenizer not in self.settings.allowed_tokenizers:
            raise ServiceError(
                400, "tokenizer_not_allowed",
                f"tokenizer {tokenizer!r} is not enabled on this server; allowed: {', '.join(self.settings.allowed_tokenizers)}",
            )
        try:
            if spec is None:
                return Budget(ratio=self.settings.default_ratio, tokenizer=tokenizer)
            return Budget(tokens=spec.tokens, ratio=spec.ratio, tokenizer=tokenizer)
        except CtxzipError as exc:
            raise from_ctxzip_error(exc) from None

    def check_method(self, method: str | None, options: dict[str, Any]) -> str:
        method = method or self.settings.default_method
        if method not in self.methods() and method not in self.methods(refresh=True):  # registered since?
            raise ServiceError(400, "unknown_method", f"unknown method {method!r}; available: {', '.join(self.methods())}")
        blocked = sorted(set(options) & set(self.settings.blocked_options))
        if blocked:
            raise ServiceError(400, "option_not_allowed", f"options {blocked} cannot be set per request on this server")
        return method

    # -- compressors, loaded once ------------------------------------------------------------

    async def get(self, method: str, options: dict[str, Any]) -> Loaded:
        key = f"{method} {json.dumps(options, sort_keys=True, default=repr)}"
        loaded = self._loaded.get(key)
        if loaded is not None:
            self._loaded.move_to_end(key)
            return loaded
        pending = self._loading.get(key)
        if pending is None:  # first request for this compressor: build it in a thread, once
            pending = asyncio.ensure_future(self._create(method, options))
            self._loading[key] = pending
            pending.add_done_callback(lambda _: self._loading.pop(key, None))
        loaded = await asyncio.shield(pending)
        self._loaded[key] = loaded
        while len(self._loaded) > self.settings.max_compressors:
            self._loaded.popitem(last=False)
        return loaded

    async def _create(self, method: str, options: dict[str, Any]) -> Loaded:
        built = _build_options(options)

        def make():
            try:
                return create_compressor(method, **built)
            except CtxzipError as exc:
                raise from_ctxzip_error(exc) from None
            except TypeError as exc:  # an option the method does not take
                raise ServiceError(400, "invalid_option", f"bad option for method {method!r}: {exc}") from None
            except ValueError as exc:
                raise ServiceError(400, "invalid_option", f"bad option for method {method!r}: {exc}") from None

        compressor = await anyio.to_thread.run_sync(make)
        batcher = None
        if self.settings.micro_batch and supports_batching(compressor):
            batcher = MicroBatcher(
                compressor,
                max_batch=self.settings.max_batch_size,
                max_wait_s=self.settings.batch_wait_ms / 1000,
                limiter=self.limiter,
                on_batch=lambda n: self.metrics.batch_size.labels(method).observe(n),
            )
        return Loaded(compressor, batcher)

    async def preload(self) -> None:
        """Load the configured methods and run one small compression each (models load lazily)."""
        try:
            await anyio.to_thread.run_sync(get_token_counter, self.settings.default_tokenizer)
            for method in self.settings.preload:
                method = self.check_method(method, {})
                loaded = await self.get(method, {})
                warm = [Document("Warm-up sentence one. Warm-up sentence two. " * 20, "warmup")]
                await anyio.to_thread.run_sync(
                    lambda: loaded.compressor.compress(warm, query="warm up", budget=Budget(tokens=16))
                )
            self.ready = True
        except Exception as exc:  # readyz reports it; the process keeps serving pass-through
            self.load_error = f"{type(exc).__name__}: {exc}"
            raise

    # -- compression ---------------------------------------------------------------------------

    async def compress(
        self,
        method: str,
        options: dict[str, Any],
        documents: list[Document],
        query: str | None,
        budget: Budget,
    ) -> tuple[CompressionResult, bool]:
        """(result, came from the cache). Raises ServiceError for what the caller got wrong."""
        key = cache_key(
            method, options, [[d.id, d.text, d.metadata] for d in documents], query,
            {"tokens": budget.tokens, "ratio": budget.ratio, "tokenizer": budget.tokenizer},
        )
        cached = self.cache.get(key)
        if cached is not None:
            self.metrics.cache.labels("hit").inc()
            return cached, True
        self.metrics.cache.labels("miss").inc()
        started = time.perf_counter()
        loaded = await self.get(method, options)
        request = {"inputs": documents, "query": query, "budget": budget}
        try:
            with anyio.fail_after(self.settings.compress_timeout_s):
                if loaded.batcher is not None:
                    result = await loaded.batcher.submit(request)
                else:
                    result = await anyio.to_thread.run_sync(
                        lambda: loaded.compressor.compress(**request), limiter=self.limiter,
                        abandon_on_cancel=True,  # on timeout stop waiting; the thread finishes on its own
                    )
        except TimeoutError:
            raise ServiceError(
                504, "compression_timeout", f"compression took longer than {self.settings.compress_timeout_s}s",
                kind="server_error",
            ) from None
        except CtxzipError as exc:
            raise from_ctxzip_error(exc) from None
        self.metrics.compress_latency.labels(method).observe(time.perf_counter() - started)
        self.metrics.tokens_in.labels(method).inc(result.original_tokens)
        self.metrics.tokens_out.labels(method).inc(result.compressed_tokens)
        self.cache.put(key, result)
        return result, False
