"""Benchmark of the REST sidecar, load from a separate process on loopback, every run bounded in time.

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.service_bench            # full run (~10-15 min)
    .venv/bin/python -m eval.service_bench --duration 5 --direct-duration 3 --extract-requests 16 --no-write  # quick look

1. Pass-through: a small chat request (under the policy's size threshold, so nothing is compressed)
   sent straight to the upstream and through the sidecar, at concurrency 1, 16 and 32: p50/p99 latency,
   requests/s, errors. The overhead is sidecar minus direct at the same concurrency.
2. Extractive compression of 10-passage HotpotQA requests (POST /v1/compress, 300-token budget, result
   cache off, a different example each request) at concurrency 16, with and without micro-batching:
   a fixed number of requests per configuration, throughput = requests / elapsed time.

The upstream stands in for a remote LLM API: a minimal asyncio HTTP/1.1 server answering a fixed chat
completion, so that its own cost on these two shared cores stays small. The load generator is a raw
asyncio HTTP/1.1 client with keep-alive connections (one per concurrent caller) for the same reason.
The sidecar runs as `python -m ctxzip serve` in its own process, as an operator would start it.
Writes eval/results/service.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32},
}).encode()
PASS_THROUGH_BODY = json.dumps({
    "model": "bench",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer in one word."},
        {"role": "user", "content": "What is the capital of France? Reply with the city name only."},
    ],
    "temperature": 0,
}).encode()


# -- the stand-in upstream ----------------------------------------------------------------------------


class UpstreamProtocol(asyncio.Protocol):
    """Answers every request with the same chat completion (keep-alive, Content-Length bodies only)."""

    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(COMPLETION)).encode() + b"\r\n\r\n" + COMPLETION
    )

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(self.response)


def run_upstream(port: int) -> None:
    async def main():
        server = await asyncio.get_running_loop().create_server(UpstreamProtocol, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    run_async(main())


# -- the load generator -------------------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        length = int(lower[at + 15 : lower.find(b"\r\n", at)])
        return status, await reader.readexactly(length)
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return status, body
    raise RuntimeError("response without a length")


def request_bytes(path: str, body: bytes, port: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer sk-bench\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


async def load(port: int, path: str, bodies: list[bytes], concurrency: int, duration: float,
               warmup: float = 1.0) -> LoadResult:
    """`concurrency` callers, each on its own keep-alive connection, for `duration` seconds after a warm-up."""
    requests = [request_bytes(path, b, port) for b in bodies]
    result = LoadResult(concurrency, duration)
    start = time.perf_counter() + warmup
    stop = start + duration
    counter = 0

    async def caller(n: int) -> None:
        nonlocal counter
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                now = time.perf_counter()
                if now >= stop:
                    return
                request = requests[counter % len(requests)]
                counter += 1
                sent = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(read_after_write(reader, writer, request), 60)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, RuntimeError) as exc:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(type(exc).__name__)
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                done = time.perf_counter()
                if done < start or done > stop:
                    continue  # counted: answers completed inside the measuring window
                if status != 200:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(f"{status}: {body[:200]!r}")
                else:
                    result.latencies.append(done - sent)
        finally:
            writer.close()

    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    return result


async def load_fixed(port: int, path: str, bodies: list[bytes], concurrency: int, total: int,
                     time_limit: float) -> LoadResult:
    """A fixed amount of work: `total` requests by `concurrency` callers; throughput = total / elapsed.

    Used for slow requests answered in bursts (a micro-batch finishes many at once), where counting
    completions inside a time window would mostly measure where the window's edges fall.
    """
    requests = [request_bytes(path, b, port) for b in bodies]
    result = LoadResult(concurrency, 0.0)
    issued = 0
    started = time.perf_counter()
    give_up = started + time_limit

    async def caller() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while issued < total and time.perf_counter() < give_up:
                request = requests[issued % len(requests)]
                issued += 1
                sent = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(read_after_write(reader, writer, request),
                                                          max(1.0, give_up - sent))
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, RuntimeError) as exc:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(type(exc).__name__)
                    return
                if status == 200:
                    result.latencies.append(time.perf_counter() - sent)
                else:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(f"{status}: {body[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def read_after_write(reader, writer, request: bytes):
    writer.write(request)
    return await read_response(reader)


def run_async(coroutine):
    """uvloop when installed (the sidecar's own loop too): the load generator should cost little CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# -- processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, path: str, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready after {timeout}s")


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class Process:
    def __init__(self, args: list[str], env: dict | None = None) -> None:
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_upstream() -> tuple[Process, int]:
    port = free_port()
    process = Process([sys.executable, "-m", "eval.service_bench", "--upstream-only", str(port)])
    wait_port(port)
    return process, port


def start_sidecar(upstream: int | str, *flags: str) -> tuple[Process, int]:
    """`ctxzip serve` in front of a local upstream port or an upstream base URL; waits until ready."""
    port = free_port()
    base = f"http://127.0.0.1:{upstream}" if isinstance(upstream, int) else upstream
    args = [sys.executable, "-m", "ctxzip", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--upstream", f"{base}/v1", "--no-access-log", "--log-level", "warning", *flags]
    process = Process(args, env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    try:
        wait_ready(port, "/readyz")
    except RuntimeError:
        process.stop()
        raise RuntimeError(process.proc.stderr.read().decode()[-2000:])
    return process, port


# -- the two benchmarks -------------------------------------------------------------------------------------


def pass_through(duration: float, direct_duration: float, levels: list[int]) -> list[dict]:
    upstream, upstream_port = start_upstream()
    sidecar, sidecar_port = start_sidecar(upstream_port, "--method", "truncate")
    rows = []
    try:
        for concurrency in levels:
            direct = run_async(load(upstream_port, "/v1/chat/completions", [PASS_THROUGH_BODY], concurrency, direct_duration))
            via = run_async(load(sidecar_port, "/v1/chat/completions", [PASS_THROUGH_BODY], concurrency, duration))
            rows.append({"concurrency": concurrency, "direct": direct, "sidecar": via})
            print(f"c={concurrency}: direct p50 {direct.pct(50):.2f} ms p99 {direct.pct(99):.2f} ms {direct.rps:.0f} rps "
                  f"err {direct.errors}; sidecar p50 {via.pct(50):.2f} ms p99 {via.pct(99):.2f} ms {via.rps:.0f} rps "
                  f"err {via.errors} {via.error_samples[:2]}", flush=True)
    finally:
        sidecar.stop()
        upstream.stop()
    return rows


def hotpot_bodies(count: int, budget: int) -> list[bytes]:
    sys.path.insert(0, str(ROOT))
    from eval.datasets import load_hotpotqa

    bodies = []
    for example in load_hotpotqa("eval", limit=count):
        documents = [{"text": d.text, "id": d.id, "metadata": d.metadata} for d in example.documents()]
        bodies.append(json.dumps({"documents": documents, "query": example.question, "method": "extractive",
                                  "budget": {"tokens": budget}}).encode())
    return bodies


EXTRACTIVE_CONFIGS = [  # (label, flags): 2 compression threads is the default
    ("off", ["--no-micro-batch", "--compress-workers", "2"]),
    ("on", ["--micro-batch", "--compress-workers", "2"]),
    ("off, 1 thread", ["--no-micro-batch", "--compress-workers", "1"]),
    ("on, 1 thread", ["--micro-batch", "--compress-workers", "1"]),
]


def extractive(total: int, concurrency: int, budget: int, examples: int, time_limit: float,
               labels: list[str] | None = None) -> list[dict]:
    bodies = hotpot_bodies(examples, budget)
    rows = []
    upstream, upstream_port = start_upstream()
    try:
        for label, flags in EXTRACTIVE_CONFIGS:
            if labels and label not in labels:
                continue
            sidecar, port = start_sidecar(upstream_port, "--preload", "extractive", "--cache-size", "0",
                                          "--compress-timeout", "600", "--request-timeout", "600", *flags)
            try:
                result = run_async(load_fixed(port, "/v1/compress", bodies, concurrency, total, time_limit))
            finally:
                sidecar.stop()
            rows.append({"label": label, "flags": " ".join(flags), "result": result})
            print(f"extractive micro-batching {label}: {result.rps:.2f} rps p50 {result.pct(50):.0f} ms "
                  f"p99 {result.pct(99):.0f} ms err {result.errors} {result.error_samples[:2]}", flush=True)
    finally:
        upstream.stop()
    return rows


def report(passes: list[dict], extract: list[dict], args) -> str:
    from eval.report import markdown_table

    lines = ["# REST sidecar benchmark", "",
             "Load from a separate process on loopback (raw asyncio HTTP/1.1 client, one keep-alive connection per",
             "concurrent caller); the sidecar runs as `python -m ctxzip serve --no-access-log --log-level warning`;",
             "the upstream is a minimal asyncio server answering a fixed chat completion. Sidecar, upstream and",
             "load generator share the machine's two cores (with other work of this machine running).",
             f"Command: `flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.service_bench {' '.join(sys.argv[1:])}`".rstrip(),
             ""]
    if passes:
        lines += ["## Pass-through (nothing to compress)", "",
                  f"Each sidecar run {args.duration:.0f} s, each direct run {args.direct_duration:.0f} s, after a 1 s warm-up.", ""]
        rows = []
        for row in passes:
            d, s = row["direct"], row["sidecar"]
            rows.append([row["concurrency"], f"{d.pct(50):.2f}", f"{d.pct(99):.2f}", f"{d.rps:.0f}", d.errors,
                         f"{s.pct(50):.2f}", f"{s.pct(99):.2f}", f"{s.rps:.0f}", s.errors,
                         f"{s.pct(50) - d.pct(50):+.2f}", f"{s.pct(99) - d.pct(99):+.2f}", len(s.latencies)])
        lines.append(markdown_table(
            ["concurrency", "direct p50 ms", "direct p99 ms", "direct req/s", "direct errors",
             "sidecar p50 ms", "sidecar p99 ms", "sidecar req/s", "sidecar errors",
             "added p50 ms", "added p99 ms", "sidecar requests"], rows))
        lines.append("")
    if extract:
        import hashlib

        digests = ", ".join(
            f"`{name}` sha1 {hashlib.sha1((ROOT / name).read_bytes()).hexdigest()[:10]}"
            for name in ("ctxzip/compressors/extractive.py", "ctxzip/relevance/bi_encoder.py") if (ROOT / name).exists()
        )
        lines += ["## Extractive compression, 10-passage HotpotQA, concurrency " + str(args.extract_concurrency), "",
                  "POST /v1/compress with the 10 paragraphs as documents (title in metadata) and the question as query, "
                  f"budget {args.budget} tokens, result cache off, a different eval-split example per request; "
                  "`--preload extractive` (MiniLM bi-encoder, default options). Each configuration serves a fixed "
                  f"{args.extract_requests} requests; req/s = requests / time from the first request to the last answer "
                  "(a micro-batch answers many requests at once, so a time window would mostly measure its edges). "
                  f"Compressor code measured: {digests}.", ""]
        rows = [[r["label"], f"`{r['flags']}`", f"{r['result'].rps:.2f}", f"{r['result'].pct(50):.0f}",
                 f"{r['result'].pct(99):.0f}", r["result"].errors, len(r["result"].latencies),
                 f"{r['result'].seconds:.0f}"] for r in extract]
        lines.append(markdown_table(["micro-batching", "flags", "req/s", "p50 ms", "p99 ms", "errors", "answered",
                                     "seconds"], rows))
        by_label = {r["label"]: r["result"].rps for r in extract}
        if by_label.get("on") and by_label.get("off"):
            best_off = max(v for k, v in by_label.items() if k.startswith("off"))
            lines += ["", f"Speed-up from micro-batching: **{by_label['on'] / by_label['off']:.2f}x** with 2 compression "
                          f"threads (the default); **{by_label['on'] / best_off:.2f}x** against the best one-by-one "
                          "configuration measured."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream-only", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per sidecar pass-through run")
    parser.add_argument("--direct-duration", type=float, default=30.0, help="seconds per direct run")
    parser.add_argument("--levels", default="1,16,32")
    parser.add_argument("--extract-requests", type=int, default=64, help="requests per extractive configuration")
    parser.add_argument("--extract-time-limit", type=float, default=300.0, help="seconds at most per configuration")
    parser.add_argument("--extract-concurrency", type=int, default=16)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--skip-pass-through", action="store_true")
    parser.add_argument("--skip-extractive", action="store_true")
    parser.add_argument("--extract-configs", default="", help="comma-separated labels to run (default: all)")
    parser.add_argument("--append", action="store_true", help="add to eval/results/service.md instead of replacing it")
    parser.add_argument("--no-write", action="store_true", help="print, do not write eval/results/service.md")
    args = parser.parse_args()
    if args.upstream_only:
        run_upstream(args.upstream_only)
        return
    levels = [int(x) for x in args.levels.split(",")]
    passes = [] if args.skip_pass_through else pass_through(args.duration, args.direct_duration, levels)
    extract = [] if args.skip_extractive else extractive(args.extract_requests, args.extract_concurrency,
                                                          args.budget, args.examples, args.extract_time_limit,
                                                          [x for x in args.extract_configs.split(",") if x])
    markdown = report(passes, extract, args)
    print(markdown)
    if not args.no_write:
        from eval.report import RESULTS, write_results

        if args.append and (RESULTS / "service.md").exists():
            markdown = (RESULTS / "service.md").read_text(encoding="utf-8").rstrip() + "\n\n" + markdown.replace(
                "# REST sidecar benchmark", "# REST sidecar benchmark, later run", 1)
        print("wrote", write_results("service", markdown))


if __name__ == "__main__":
    main()
