"""Test and benchmark helpers: a recording OpenAI- and Anthropic-compatible upstream and uvicorn on a free port.

    upstream = RecordingUpstream()
    with UvicornThread(upstream.app()) as up, UvicornThread(create_app(settings(up.url))) as sidecar:
        ...

Kept in the package (not in tests/) so the benchmark and users' own integration tests can use them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, StreamingResponse

ANSWER = "Paris is the capital of France."


def completion(model: str, content: str = ANSWER) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17},
    }


def stream_chunks(model: str, content: str = ANSWER) -> list[bytes]:
    """SSE events, one per word, then [DONE] — the framing OpenAI uses."""
    words = content.split(" ")
    events = []
    for n, word in enumerate(words):
        delta = {"content": word if n == 0 else " " + word}
        if n == 0:
            delta["role"] = "assistant"
        chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        events.append(f"data: {json.dumps(chunk)}\n\n".encode())
    last = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    events.append(f"data: {json.dumps(last)}\n\n".encode())
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_message(model: str, content: str = ANSWER) -> dict[str, Any]:
    return {
        "id": "msg_test", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": content}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 7},
    }


def anthropic_stream_events(model: str, content: str = ANSWER) -> list[bytes]:
    """Anthropic Messages SSE: message_start, one text block delta per word, message_delta, message_stop."""
    def event(name: str, data: dict) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    start = anthropic_message(model, "")
    start["content"], start["stop_reason"] = [], None
    events = [event("message_start", {"type": "message_start", "message": start}),
              event("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}}),
              event("ping", {"type": "ping"})]
    for n, word in enumerate(content.split(" ")):
        events.append(event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "text_delta", "text": word if n == 0 else " " + word}}))
    events += [event("content_block_stop", {"type": "content_block_stop", "index": 0}),
               event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": 7}}),
               event("message_stop", {"type": "message_stop"})]
    return events


@dataclass
class RecordingUpstream:
    """Answers chat completions (OpenAI) and messages (Anthropic); remembers each request's JSON body and headers."""

    stream_delay_s: float = 0.0  # between SSE events, so a test can see chunks arrive one by one
    record: bool = True
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        async def answer(request: Request, events, message) -> StreamingResponse | JSONResponse:
            """Record the request, then stream `events(model)` or return `message(model)`."""
            body = json.loads(await request.body())
            if self.record:
                self.received.append(body)
                self.headers.append(dict(request.headers))
            model = body.get("model", "test-model")
            if body.get("stream"):
                async def paced():
                    for event in events(model):
                        yield event
                        if self.stream_delay_s:
                            await asyncio.sleep(self.stream_delay_s)
                return StreamingResponse(paced(), media_type="text/event-stream")
            return JSONResponse(message(model), headers={"x-upstream": "recording"})

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            return await answer(request, stream_chunks, completion)

        @app.post("/v1/messages")
        async def messages(request: Request):
            return await answer(request, anthropic_stream_events, anthropic_message)

        @app.get("/v1/models")
        async def models():
            return {"object": "list", "data": [{"id": "test-model", "object": "model", "owned_by": "test"}]}

        return app


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


class UvicornThread:
    """A real uvicorn server on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, app, **config: Any) -> None:
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", **config))
        self.server.install_signal_handlers = lambda: None  # not the main thread
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "UvicornThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


# -- test doubles: compressors that count, fail or stall ------------------------------------------

from ctxzip.compressors.truncate import TruncateCompressor  # noqa: E402
from ctxzip.registry import register  # noqa: E402


@dataclass
class CountingCompressor(TruncateCompressor):
    """Truncation with `compress_many`, recording the size of every batched call it gets."""

    delay_s: float = 0.0  # per call, so concurrent requests pile up behind a running batch
    method = "test-counting"
    batches: ClassVar[list[int]] = []
    singles: ClassVar[list[int]] = []
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def compress(self, inputs, query=None, budget=None):
        with self._lock:
            self.singles.append(1)
        time.sleep(self.delay_s)
        return TruncateCompressor.compress(self, inputs, query, budget)

    def compress_many(self, items, budget):
        with self._lock:
            self.batches.append(len(items))
        time.sleep(self.delay_s)
        return [TruncateCompressor.compress(self, inputs, query, b) for (inputs, query), b in zip(items, budget)]

    @classmethod
    def reset(cls) -> None:
        cls.batches.clear()
        cls.singles.clear()


@dataclass
class ExplodingCompressor(TruncateCompressor):
    """Always raises a non-ctxzip error: what a compressor bug looks like to the sidecar."""

    method = "test-exploding"

    def compress(self, inputs, query=None, budget=None):
        raise RuntimeError("the compressor exploded")


@dataclass
class StallingCompressor(TruncateCompressor):
    """Sleeps before compressing, to trip the compression time limit."""

    delay_s: float = 2.0
    method = "test-stalling"

    def compress(self, inputs, query=None, budget=None):
        time.sleep(self.delay_s)
        return TruncateCompressor.compress(self, inputs, query, budget)


def register_test_compressors() -> None:
    for cls in (CountingCompressor, ExplodingCompressor, StallingCompressor):
        register(cls.method, cls)


def wait_until_ready(process, url: str, timeout_s: float = 60.0) -> None:
    """Poll `url`/readyz until 200, failing if the server process exits or the time runs out."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "ctxzip serve did not start"
        time.sleep(0.1)
