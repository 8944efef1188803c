"""The outer edge, as plain ASGI (no per-request task overhead): body size limit, per-request time
limit, request metrics and one JSON access-log line per request."""

from __future__ import annotations

import json
import logging
import time

import asyncio
import sys

import anyio

# asyncio's own timeout is several times cheaper per request than anyio's cancel scope (3.11+).
if sys.version_info >= (3, 11):
    def deadline(seconds: float):
        return asyncio.timeout(seconds)

    def lift(limit) -> None:
        limit.reschedule(None)
else:  # pragma: no cover
    import contextlib

    @contextlib.asynccontextmanager
    async def deadline(seconds: float):
        with anyio.fail_after(seconds) as scope:
            yield scope

    def lift(limit) -> None:
        limit.deadline = float("inf")
from ctxzip_service.logs import log_event
from ctxzip_service.metrics import Metrics
from ctxzip_service.settings import ServiceSettings

# Label values for metrics: known routes by path, everything else as "other" (bounded cardinality).
ENDPOINTS = frozenset({"/v1/compress", "/v1/chat/completions", "/v1/messages", "/healthz", "/readyz", "/metrics"})


def _error(status: int, code: str, message: str, kind: str = "invalid_request_error", path: str = "") -> tuple[dict, bytes]:
    if path == "/v1/messages":  # Anthropic clients read Anthropic's error shape
        from ctxzip_service.anthropic import error_body

        body = json.dumps(error_body(status, message)).encode()
    else:
        body = json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, body


class EdgeMiddleware:
    def __init__(self, app, settings: ServiceSettings, metrics: Metrics, logger: logging.Logger) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.logger = logger

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else ("/v1/*" if path.startswith("/v1/") else "other")
        status = 500
        answered = False
        limit = None

        async def send_observed(message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                answered = True
                if limit is not None:
                    lift(limit)  # the limit covers the time to the response start, not a long stream
                self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
            await send(message)

        async def refuse(code_status: int, code: str, message: str) -> None:
            start, body = _error(code_status, code, message, path=path)
            await send_observed(start)
            await send({"type": "http.response.body", "body": body})

        self.metrics.in_flight.inc()
        try:
            receive = await self._read_body(scope, receive, refuse)
            if receive is None:
                return
            try:
                # Time to the response start; a stream already under way is bounded by the upstream
                # client's read timeout between chunks instead.
                async with deadline(self.settings.request_timeout_s) as limit:
                    await self.app(scope, receive, send_observed)
            except TimeoutError:
                limit = None  # expired: nothing left to lift
                if not answered:
                    self.metrics.errors.labels("request_timeout").inc()
                    await refuse(504, "request_timeout", f"the request took longer than {self.settings.request_timeout_s}s")
                else:
                    raise
        finally:
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(endpoint, str(status)).inc()
            if self.settings.access_log:
                log_event(self.logger, logging.INFO, "request", method=scope["method"], path=path, status=status,
                          ms=round((time.perf_counter() - started) * 1000, 2))

    async def _read_body(self, scope, receive, refuse):
        """Read the whole body up to the limit and replay it to the app; None when refused."""
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return receive
        limit = self.settings.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await refuse(400, "invalid_content_length", "the Content-Length header is not a number")
                    return None
                if declared > limit:
                    self.metrics.errors.labels("body_too_large").inc()
                    await refuse(413, "body_too_large", f"the request body is larger than {limit} bytes")
                    return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # chunked bodies have no Content-Length to check up front
                self.metrics.errors.labels("body_too_large").inc()
                await refuse(413, "body_too_large", f"the request body is larger than {limit} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        return replay
