"""Gateway benchmark: ctxzip's sidecar and a peer compression proxy on the same recorded traces.

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.gateway                    # both systems, writes eval/results/gateway.md
    .venv/bin/python -m eval.gateway --systems peer --duration 3 --no-write          # a quick look at one system

Systems, each in its own process in front of the same loopback upstream:
- `ctxzip`: `python -m ctxzip serve` with its default policy (budget: half of each compressible part);
- `ctxzip-matched`: the same sidecar, each request asking for the message-text tokens the peer sent
  upstream for it (where the peer shrank it): the answer-bearing share at equal tokens;
- `peer`: headroom-ai 0.42 (`headroom proxy`) from its own virtualenv (`--peer-venv`, default
  /work/venvs/headroom), offline: HEADROOM_OFFLINE=1, `--disable-kompress --disable-kompress-fallback`
  (its prose model would come from a model hub), `--no-rate-limit`, `--no-cache`, its default mode
  (`cache`: prior turns frozen for the provider's prefix cache) and everything else at its defaults.
  Traces name a cl100k_base model (gpt-4-turbo), so both count tokens in the same tokenizer.

Quality pass (sequential; the upstream records what arrives): every trace of eval/traces/gateway, every
turn of the agent sessions. Per system and kind of trace:
- tokens in / out: cl100k_base tokens of what the app sent and of what reached the upstream (message
  texts, tool-call arguments and tool definitions, so a tool a proxy adds is counted);
- JSON valid: tool messages that were JSON and still parse as JSON upstream;
- silently changed: JSON tool messages that parse but whose values changed or went missing without an
  elision marker (`ctxzip.structured.json_check`); a message that no longer parses is counted invalid;
- answer-bearing kept: the strings each trace chose when it was built (gold sentences, the answering
  record's fields, the log lines that explain the failure) found in what reached the upstream;
- question verbatim: the user's question arrived byte-identical;
- prefix stable: agent turns t+1 whose first messages (and tools) equal everything sent at turn t.

Latency pass (load from this process on loopback, keep-alive connections, fixed-answer upstream):
added p50/p99 over direct-to-upstream at concurrency 1 and 16, for a small request that nothing
compresses (pass-through) and for the traces' requests (compression included; caches as configured).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from eval.gateway_traces import appears, load_traces, request_body
from eval.service_bench import (
    PASS_THROUGH_BODY, Process, free_port, load, run_async, start_sidecar, start_upstream, wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "eval" / "results"
PEER_VENV = Path("/work/venvs/headroom")
KINDS = ("rag", "json", "logs", "agent")


# -- the systems -----------------------------------------------------------------------------------


@dataclass
class System:
    name: str
    port: int = 0
    process: Process | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def start_ctxzip(upstream_url: str, extra: list[str]) -> System:
    process, port = start_sidecar(upstream_url, *extra)
    return System("ctxzip", port, process)


def peer_version(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('headroom-ai'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def start_peer(upstream_url: str, venv: Path, workdir: Path) -> System:
    """headroom's proxy, offline, pointed at the loopback upstream for both APIs."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "peer.log"
    args = [str(venv / "bin" / "headroom"), "proxy", "--host", "127.0.0.1", "--port", str(port),
            "--openai-api-url", upstream_url, "--anthropic-api-url", upstream_url,
            "--disable-kompress", "--disable-kompress-fallback", "--no-rate-limit", "--no-cache",
            "--no-telemetry", "--no-subscription-tracking", "--stateless", "--no-http2"]
    from ctxzip.budget import get_token_counter

    get_token_counter("cl100k_base")  # puts the offline cl100k_base file where tiktoken looks for it
    env = {**os.environ, "HEADROOM_OFFLINE": "1", "HOME": str(workdir), "HF_HUB_OFFLINE": "1",
           "TIKTOKEN_CACHE_DIR": os.environ.get("TIKTOKEN_CACHE_DIR", "/tmp/data-gym-cache")}
    handle = open(log, "wb")
    process = Process.__new__(Process)
    process.proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, "/health", timeout=120)
    except RuntimeError:
        process.stop()
        raise RuntimeError(log.read_text()[-2000:])
    return System("peer", port, process, log)


# -- measuring what arrived --------------------------------------------------------------------------


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def body_tokens(body: dict, counter) -> int:
    texts = [text_of(m.get("content")) for m in body.get("messages", [])]
    texts += [json.dumps(m["tool_calls"]) for m in body.get("messages", []) if m.get("tool_calls")]
    if body.get("tools"):
        texts.append(json.dumps(body["tools"]))
    return sum(counter.count_many([t for t in texts if t]))


def json_checks(sent: dict, arrived: dict) -> tuple[int, int, int]:
    """(JSON tool messages sent, still valid JSON upstream, valid but changed without a marker)."""
    from ctxzip.structured.json_check import elision_problems
    from ctxzip.structured.json_units import is_json

    originals = {m.get("tool_call_id"): m["content"] for m in sent["messages"]
                 if m.get("role") == "tool" and isinstance(m.get("content"), str) and is_json(m["content"])}
    received = {m.get("tool_call_id"): text_of(m.get("content")) for m in arrived.get("messages", []) if m.get("role") == "tool"}
    valid = changed = 0
    for call_id, original in originals.items():
        out = received.get(call_id)
        if out is None:
            continue
        try:
            json.loads(out)
        except ValueError:
            continue
        valid += 1
        changed += bool(elision_problems(original, out))
    return len(originals), valid, changed


def prefix_stable(previous: dict, current: dict) -> bool:
    """What was sent at turn t is the start of what is sent at turn t+1 (messages and tools)."""
    before, after = previous.get("messages", []), current.get("messages", [])
    return after[: len(before)] == before and previous.get("tools") == current.get("tools")


@dataclass
class TraceRow:
    system: str
    trace: str
    kind: str
    tokens_in: int = 0
    tokens_out: int = 0
    json_total: int = 0
    json_valid: int = 0
    json_changed: int = 0
    answer_total: int = 0
    answer_kept: int = 0
    verbatim_total: int = 0
    verbatim_kept: int = 0
    prefix_total: int = 0
    prefix_stable: int = 0
    errors: int = 0
    statuses: dict = field(default_factory=dict)
    turn_text_tokens: list = field(default_factory=list)  # (in, out) message-text tokens per turn
    seconds: list = field(default_factory=list)  # each request's time to the answer (sequential, first sight)


def text_tokens(body: dict, counter) -> int:
    return sum(counter.count_many([t for t in (text_of(m.get("content")) for m in body.get("messages", [])) if t]))


def matched_budgets(rows: list[TraceRow]) -> dict[tuple[str, int], int]:
    """(trace, turn) -> the message-text tokens another system sent upstream, where it sent fewer than it got."""
    return {(r.trace, turn): out for r in rows for turn, (inp, out) in enumerate(r.turn_text_tokens) if out < inp}


def quality_pass(system: System, traces: list[dict], upstream, counter,
                 budgets: dict[tuple[str, int], int] | None = None, label: str | None = None) -> list[TraceRow]:
    """Every turn of every trace through `system`; with `budgets`, each request asks for that many tokens."""
    rows = []
    with httpx.Client(timeout=600) as client:
        for trace in traces:
            row = TraceRow(label or system.name, trace["name"], trace["kind"])
            arrived_turns: list[dict] = []
            for turn in range(len(trace["turns"])):
                body = request_body(trace, turn)
                if budgets is not None and (trace["name"], turn) in budgets:
                    body = {**body, "ctxzip": {"budget": {"tokens": budgets[(trace["name"], turn)]}}}
                before = len(upstream.received)
                started = time.perf_counter()
                response = client.post(f"{system.url}/v1/chat/completions", json=body,
                                       headers={"authorization": "Bearer sk-gateway-bench"})
                row.seconds.append(time.perf_counter() - started)
                status = response.headers.get("x-ctxzip-status") or response.status_code
                row.statuses[str(status)] = row.statuses.get(str(status), 0) + 1
                if response.status_code != 200 or len(upstream.received) == before:
                    row.errors += 1
                    arrived_turns.append({})
                    continue
                arrived = upstream.received[-1]
                arrived_turns.append(arrived)
                sent = request_body(trace, turn)
                row.turn_text_tokens.append((text_tokens(sent, counter), text_tokens(arrived, counter)))
                row.tokens_in += body_tokens(sent, counter)
                row.tokens_out += body_tokens(arrived, counter)
                total, valid, changed = json_checks(sent, arrived)
                row.json_total, row.json_valid, row.json_changed = (
                    row.json_total + total, row.json_valid + valid, row.json_changed + changed)
            last = arrived_turns[-1] if arrived_turns else {}
            contents = [text_of(m.get("content")) for m in last.get("messages", [])]
            row.answer_total = len(trace["answer_bearing"])
            row.answer_kept = sum(any(appears(a["text"], c) for c in contents) for a in trace["answer_bearing"])
            row.verbatim_total = len(trace["verbatim"])
            row.verbatim_kept = sum(any(v in c for c in contents) for v in trace["verbatim"])
            for previous, current in zip(arrived_turns, arrived_turns[1:]):
                if previous and current:
                    row.prefix_total += 1
                    row.prefix_stable += prefix_stable(previous, current)
            rows.append(row)
            print(f"{row.system} {trace['name']}: {row.tokens_in} -> {row.tokens_out} tokens, answer "
                  f"{row.answer_kept}/{row.answer_total}, json {row.json_valid}/{row.json_total} "
                  f"changed {row.json_changed}, prefix {row.prefix_stable}/{row.prefix_total}, {row.statuses}", flush=True)
    return rows


def scrape_counters(system: System) -> dict[tuple[str, str, str, str], float]:
    """ctxzip's own Prometheus counters of chat tokens: (direction, route, method, kind) -> tokens."""
    import re

    text = httpx.get(f"{system.url}/metrics", timeout=30).text
    pattern = re.compile(r'^ctxzip_chat_tokens_(in|out)_total\{kind="([^"]*)",method="([^"]*)",route="([^"]*)"\} (\S+)$', re.M)
    return {(d, route, method, kind): float(v) for d, kind, method, route, v in pattern.findall(text)}


def counters_table(counters: dict[str, dict]) -> list[list]:
    rows = []
    for label, values in counters.items():
        keys = sorted({k[1:] for k in values})
        for route, method, kind in keys:
            tin, tout = values.get(("in", route, method, kind), 0), values.get(("out", route, method, kind), 0)
            rows.append([label, route, method, kind, int(tin), int(tout), f"{1 - tout / tin:.1%}" if tin else "-"])
    return rows


# -- latency -----------------------------------------------------------------------------------------


def latency_pass(system_port: int, upstream_port: int, bodies: list[bytes], levels: list[int], duration: float,
                 direct: dict, warm: bool = False) -> list[dict]:
    """Added latency under load. `warm`: every body is sent once before the clock starts (a system's
    caches then hold what it compressed; first-sight latency is the quality pass's table)."""
    if warm:
        with httpx.Client(timeout=600) as client:
            for body in bodies:
                client.post(f"http://127.0.0.1:{system_port}/v1/chat/completions", content=body,
                            headers={"content-type": "application/json", "authorization": "Bearer sk-bench"})
    rows = []
    for concurrency in levels:
        if concurrency not in direct:
            direct[concurrency] = run_async(load(upstream_port, "/v1/chat/completions", bodies, concurrency, duration))
        via = run_async(load(system_port, "/v1/chat/completions", bodies, concurrency, duration))
        rows.append({"concurrency": concurrency, "direct": direct[concurrency], "via": via})
        print(f"  c={concurrency}: direct p50 {direct[concurrency].pct(50):.2f} ms, via p50 {via.pct(50):.2f} ms "
              f"p99 {via.pct(99):.2f} ms, {len(via.latencies)} answers, {via.errors} errors {via.error_samples[:2]}", flush=True)
    return rows


# -- report ------------------------------------------------------------------------------------------


def summarise(rows: list[TraceRow]) -> dict[str, float | int]:
    s = {k: sum(getattr(r, k) for r in rows) for k in (
        "tokens_in", "tokens_out", "json_total", "json_valid", "json_changed", "answer_total", "answer_kept",
        "verbatim_total", "verbatim_kept", "prefix_total", "prefix_stable", "errors")}
    per_trace = [r.answer_kept / r.answer_total for r in rows if r.answer_total]
    s["worst_answer"] = min(per_trace) if per_trace else float("nan")
    s["traces"] = len(rows)
    return s


def _share(a: int, b: int) -> str:
    return f"{a}/{b} ({a / b:.0%})" if b else "-"


def quality_table(rows: list[TraceRow]) -> list[list]:
    table = []
    systems = list(dict.fromkeys(r.system for r in rows))
    for kind in (*KINDS, "all"):
        for system in systems:
            chosen = [r for r in rows if r.system == system and (kind == "all" or r.kind == kind)]
            if not chosen:
                continue
            s = summarise(chosen)
            saved = 1 - s["tokens_out"] / s["tokens_in"] if s["tokens_in"] else 0.0
            table.append([
                kind, system, s["traces"], s["tokens_in"], s["tokens_out"], f"{saved:.1%}",
                _share(s["json_valid"], s["json_total"]), s["json_changed"] if s["json_total"] else "-",
                _share(s["answer_kept"], s["answer_total"]), f"{s['worst_answer']:.0%}",
                _share(s["verbatim_kept"], s["verbatim_total"]), _share(s["prefix_stable"], s["prefix_total"]),
                s["errors"],
            ])
    return table


def first_sight_table(rows: list[TraceRow]) -> list[list]:
    """Per kind and system: p50/p99 of each request's time in the sequential quality pass (every
    request seen for the first time; the loopback upstream answers in about 0.1 ms)."""
    import numpy as np

    table = []
    for kind in KINDS:
        for system in dict.fromkeys(r.system for r in rows):
            seconds = [x for r in rows if r.system == system and r.kind == kind for x in r.seconds]
            if seconds:
                table.append([kind, system, len(seconds), f"{np.percentile(seconds, 50) * 1000:.1f}",
                              f"{np.percentile(seconds, 99) * 1000:.1f}"])
    return table


def latency_table(latency: dict[str, dict[str, list[dict]]]) -> list[list]:
    table = []
    for workload, by_system in latency.items():
        for system, rows in by_system.items():
            for row in rows:
                d, v = row["direct"], row["via"]
                table.append([workload, system, row["concurrency"], f"{d.pct(50):.2f}", f"{v.pct(50):.2f}",
                              f"{v.pct(99):.2f}", f"{v.pct(50) - d.pct(50):+.2f}", f"{v.pct(99) - d.pct(99):+.2f}",
                              len(v.latencies), v.errors])
    return table


def write_report(rows: list[TraceRow], latency: dict, args, versions: dict[str, str], counters: dict | None = None) -> str:
    from eval.report import markdown_table

    lines = [
        "# Gateway benchmark: ctxzip sidecar and a peer proxy on recorded traces", "",
        f"Command: `flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.gateway {' '.join(sys.argv[1:])}`".rstrip(), "",
        "Traces: `eval/traces/gateway` (built by `python -m eval.gateway_traces`; what must survive was chosen when "
        "they were built). Systems: " + "; ".join(f"{k} {v}" for k, v in versions.items()) + ". "
        "Both forward to the same loopback upstream, which records what arrives. Tokens are cl100k_base over "
        "message texts, tool-call arguments and tool definitions. How each column is measured: `eval/gateway.py`.", "",
        "## Quality", "",
        markdown_table(["traces", "system", "n", "tokens in", "tokens out", "saved", "JSON valid",
                        "silently changed", "answer-bearing kept", "worst trace", "question verbatim",
                        "prefix stable", "errors"], quality_table(rows)),
        "",
    ]
    if counters:
        lines += ["## ctxzip's own accounting", "",
                  "Its Prometheus counters after the quality pass (`ctxzip_chat_tokens_in_total` / `_out_total`): the "
                  "tokens of every piece it compressed, before and after, over every request of the run (the agent "
                  "sessions resend earlier pieces each turn, counted each time).", "",
                  markdown_table(["system", "route", "method", "content", "tokens in", "tokens out", "saved"],
                                 counters_table(counters)), ""]
    lines += ["## Latency at first sight", "",
              "Each request of the quality pass, one at a time, seen for the first time (compression included, "
              "caches cold for it; the recording upstream answers on loopback).", "",
              markdown_table(["traces", "system", "requests", "p50 ms", "p99 ms"], first_sight_table(rows)), ""]
    if latency:
        lines += ["## Added latency", "",
                  f"{args.duration:.0f} s per run after a 1 s warm-up, one keep-alive connection per caller; "
                  "`pass-through` is a small request nothing compresses; `traces` cycles through the last request "
                  "of every trace, each sent once before the clock starts (ctxzip's result cache then holds its "
                  "pieces, as it would for an agent's earlier turns; the peer runs with its cache off, as the issue "
                  "asks). Direct = the same requests straight to the fixed-answer upstream.", "",
                  markdown_table(["workload", "system", "concurrency", "direct p50 ms", "p50 ms", "p99 ms",
                                  "added p50 ms", "added p99 ms", "answers", "errors"], latency_table(latency)), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="gateway benchmark")
    parser.add_argument("--systems", default="peer,ctxzip,ctxzip-matched",
                        help="peer, ctxzip, ctxzip-matched (ctxzip asked for the peer's tokens; needs peer first)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--traces", default="", help="only these trace names (comma-separated)")
    parser.add_argument("--peer-venv", type=Path, default=PEER_VENV)
    parser.add_argument("--ctxzip-flags", default="", help="extra flags for ctxzip serve")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per latency run")
    parser.add_argument("--levels", default="1,16")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--name", default="gateway")
    args = parser.parse_args()

    from ctxzip.budget import get_token_counter
    from tests.support.upstream import RecordingUpstream, UvicornThread

    counter = get_token_counter("cl100k_base")
    kinds = args.kinds.split(",")
    traces = [t for t in load_traces() if t["kind"] in kinds
              and (not args.traces or t["name"] in args.traces.split(","))]
    levels = [int(x) for x in args.levels.split(",")]
    recording = RecordingUpstream()
    rows: list[TraceRow] = []
    latency: dict[str, dict[str, list[dict]]] = {"pass-through": {}, "traces": {}}
    versions: dict[str, str] = {}
    counters: dict[str, dict] = {}
    direct: dict[str, dict] = {"pass-through": {}, "traces": {}}
    trace_bodies = [json.dumps(request_body(t)).encode() for t in traces]
    workdir = Path("/tmp") / f"ctxzip-gateway-{os.getpid()}"
    with UvicornThread(recording.app()) as up:
        fixed, fixed_port = (None, None) if args.no_latency else start_upstream()
        try:
            for name in args.systems.split(","):
                started = time.perf_counter()
                if name == "ctxzip-matched":
                    # ctxzip asked for exactly the tokens the peer sent upstream, request by request.
                    budgets = matched_budgets([r for r in rows if r.system == "peer"])
                    system = start_ctxzip(up.url, args.ctxzip_flags.split())
                    try:
                        rows += quality_pass(system, traces, recording, counter, budgets, label="ctxzip at peer's tokens")
                        counters["ctxzip at peer's tokens"] = scrape_counters(system)
                    finally:
                        system.stop()
                    continue
                if name == "peer":
                    system = start_peer(up.url, args.peer_venv, workdir)
                    versions["peer"] = f"headroom-ai {peer_version(args.peer_venv)}"
                else:
                    system = start_ctxzip(up.url, args.ctxzip_flags.split())
                    versions["ctxzip"] = "ctxzip " + subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                                                    capture_output=True, text=True).stdout.strip()
                print(f"{name} ready in {time.perf_counter() - started:.1f} s", flush=True)
                try:
                    rows += quality_pass(system, traces, recording, counter)
                    if name == "ctxzip":
                        counters["ctxzip"] = scrape_counters(system)
                finally:
                    system.stop()
                if args.no_latency:
                    continue
                # Latency against the fixed-answer upstream (recording costs time of its own).
                system = start_peer(f"http://127.0.0.1:{fixed_port}", args.peer_venv, workdir) if name == "peer" \
                    else start_ctxzip(f"http://127.0.0.1:{fixed_port}", args.ctxzip_flags.split())
                try:
                    print(f"{name} latency, pass-through", flush=True)
                    latency["pass-through"][name] = latency_pass(system.port, fixed_port, [PASS_THROUGH_BODY], levels,
                                                                 args.duration, direct["pass-through"])
                    print(f"{name} latency, traces", flush=True)
                    latency["traces"][name] = latency_pass(system.port, fixed_port, trace_bodies, levels,
                                                           args.duration, direct["traces"], warm=True)
                finally:
                    system.stop()
        finally:
            if fixed is not None:
                fixed.stop()
    report = write_report(rows, {k: v for k, v in latency.items() if v}, args, versions, counters)
    print(report)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{args.name}.md").write_text(report + "\n", encoding="utf-8")
        (RESULTS / f"{args.name}.json").write_text(json.dumps([r.__dict__ for r in rows], indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
