"""Prometheus metrics. Each app gets its own registry so several apps (tests) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ctxzip_requests", "HTTP requests", ["endpoint", "status"], registry=r)
        self.latency = Histogram(
            "ctxzip_request_seconds", "Time to the response start", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.compress_latency = Histogram(
            "ctxzip_compress_seconds", "Compression time", ["method"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.upstream_latency = Histogram(
            "ctxzip_upstream_seconds", "Upstream time to headers", buckets=LATENCY_BUCKETS, registry=r
        )
        self.tokens_in = Counter("ctxzip_tokens_in", "Tokens before compression", ["method"], registry=r)
        self.tokens_out = Counter("ctxzip_tokens_out", "Tokens after compression", ["method"], registry=r)
        # Chat routes: every compressed segment's tokens before and after, by route, method and content kind
        # (context, json, lines, text). Savings in reports come from these.
        self.chat_tokens_in = Counter("ctxzip_chat_tokens_in", "Chat segment tokens before compression",
                                      ["route", "method", "kind"], registry=r)
        self.chat_tokens_out = Counter("ctxzip_chat_tokens_out", "Chat segment tokens after compression",
                                       ["route", "method", "kind"], registry=r)
        self.chat_requests = Counter("ctxzip_chat_requests", "Chat requests by route and outcome",
                                     ["route", "status"], registry=r)
        self.errors = Counter("ctxzip_errors", "Errors by kind", ["kind"], registry=r)
        self.cache = Counter("ctxzip_cache", "Result cache lookups", ["result"], registry=r)
        self.batch_size = Histogram(
            "ctxzip_batch_size", "Requests per micro-batch", ["method"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r,
        )
        self.in_flight = Gauge("ctxzip_in_flight", "Requests being served", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
