"""Benchmark of offline corpus jobs on HotpotQA paragraphs (eval split), written to eval/results/corpus.md.

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.corpus_bench --records 1000

1. Job overhead: the compressor's own batched throughput in one process (records already in memory,
   `compress_many` over batches, model loaded and warm) against `run_corpus_job` on the same records
   from a JSONL file (reading, parsing, checking fields, shards, manifest, errors, progress bar), in
   the same process with the model already loaded. The two alternate chunk by chunk.
2. The `ctxzip corpus` command as a user runs it (a fresh process: start-up and model load included).
3. Memory: peak RSS of the command on a small and a large input (constant memory: it should not grow).
4. Optionally (--ray) the Ray engine on a local Ray with one model actor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ctxzip.budget import Budget
from ctxzip.corpus import CorpusJob, run_corpus_job
from ctxzip.corpus.records import build_compressor
from ctxzip.document import Document
from eval.datasets import load_hotpotqa
from eval.report import markdown_table, write_results

_RSS_WRAPPER = """
import resource, sys
from ctxzip.cli import main
sys.argv = ["ctxzip", *sys.argv[1:]]
try:
    main()
finally:
    print("MAX_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def hotpot_records(limit: int | None) -> list[dict]:
    """One record per paragraph: id, title, text, and the question it was retrieved for."""
    records = []
    for example in load_hotpotqa("eval"):
        for k, paragraph in enumerate(example.paragraphs):
            records.append({"id": f"{example.id}/{k}", "title": paragraph.title, "text": paragraph.text,
                            "question": example.question})
            if limit is not None and len(records) >= limit:
                return records
    return records


def write_jsonl(records: list[dict], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def clear_caches() -> None:
    """Forget cached sentence embeddings, so no run profits from the one before it."""
    try:
        from ctxzip.relevance.bi_encoder import clear_embedding_cache
    except ImportError:
        return
    clear_embedding_cache()


def compressor_alone(compressor, records: list[dict], budget: Budget, batch_size: int) -> tuple[float, int]:
    """(seconds, original tokens) for the compressor over in-memory records, batched like the job."""
    items = [([Document(r["text"], r["id"])], r["question"]) for r in records]
    many = getattr(compressor, "compress_many", None)
    tokens = 0
    started = time.perf_counter()
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        results = many(batch, budget=budget) if many else [compressor.compress(d, query=q, budget=budget) for d, q in batch]
        tokens += sum(r.original_tokens for r in results)
    return time.perf_counter() - started, tokens


def job_in_process(path: Path, out: Path, args, engine: str = "local") -> dict:
    job = CorpusJob(path, out, method=args.method, ratio=args.ratio, query_field="question",
                    batch_size=args.batch_size, shard_size=args.shard_size, engine=engine, progress=True,
                    overwrite=True, method_options=args.options)
    return run_corpus_job(job)


def command_run(path: Path, out: Path, method: str, args) -> dict:
    """The `ctxzip corpus` command in a fresh process: wall time and peak RSS."""
    command = [sys.executable, "-c", _RSS_WRAPPER, "corpus", str(path), str(out), "--method", method,
               "--ratio", str(args.ratio), "--query-field", "question", "--batch-size", str(args.batch_size),
               "--shard-size", str(args.shard_size), "--overwrite"]
    for key, value in args.options.items():
        command += ["--option", f"{key}={json.dumps(value)}"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    rss_kb = int(done.stderr.rsplit("MAX_RSS_KB", 1)[1].split()[0])
    summary = json.loads(done.stdout)
    return {"seconds": seconds, "rss_mb": rss_kb / 1024, "records": summary["records"], "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--method", default="extractive")
    parser.add_argument("--options", type=json.loads, default={}, help='method options as JSON, e.g. {"rounds": 1}')
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=4, help="the two sides alternate over this many chunks")
    parser.add_argument("--command-records", type=int, default=300, help="records for the command (and Ray) runs")
    parser.add_argument("--memory-records", type=int, nargs=2, default=[2000, 14660],
                        help="small and large input for the peak-memory check (method truncate)")
    parser.add_argument("--ray", action="store_true", help="also time the Ray engine (local Ray, one actor)")
    args = parser.parse_args()

    records = hotpot_records(args.records)
    budget = Budget(ratio=args.ratio)
    work = Path(tempfile.mkdtemp(prefix="ctxzip-corpus-bench-"))
    write_jsonl(records, work / "paragraphs.jsonl")
    compressor = build_compressor(args.method, args.options)
    compressor_alone(compressor, records[: args.batch_size], budget, args.batch_size)  # load and warm the model
    job_in_process(write_jsonl(records[:64], work / "warm.jsonl"), work / "warm", args)

    # Others share this machine: alternate the two sides chunk by chunk, so both see the same load.
    size = -(-len(records) // args.chunks)
    alone_seconds = job_seconds = 0.0
    tokens = job_tokens = job_records = shards = 0
    chunk_rows = []
    for number, start in enumerate(range(0, len(records), size)):
        chunk = records[start : start + size]
        chunk_path = write_jsonl(chunk, work / f"chunk-{number}.jsonl")
        clear_caches()
        seconds, chunk_tokens = compressor_alone(compressor, chunk, budget, args.batch_size)
        clear_caches()
        summary = job_in_process(chunk_path, work / f"out-{number}", args)
        alone_seconds += seconds
        tokens += chunk_tokens
        job_seconds += summary["this_run"]["seconds"]
        job_tokens += summary["original_tokens"]
        job_records += summary["records"]
        shards += summary["shards"]
        chunk_rows.append([number, len(chunk), f"{seconds:.2f}", f"{summary['this_run']['seconds']:.2f}"])
        print(f"chunk {number}: alone {seconds:.1f}s  job {summary['this_run']['seconds']:.1f}s", file=sys.stderr)
    overhead = job_seconds / alone_seconds - 1
    n = len(records)

    rows = [
        ["compressor alone (compress_many, in memory)", n, f"{alone_seconds:.1f}", f"{n / alone_seconds:.1f}",
         f"{tokens / alone_seconds:,.0f}", "-"],
        ["corpus job, local engine (in process, model loaded)", job_records, f"{job_seconds:.1f}",
         f"{job_records / job_seconds:.1f}", f"{job_tokens / job_seconds:,.0f}", f"{overhead * 100:+.1f}%"],
    ]

    command_records = records[: args.command_records]
    command_path = write_jsonl(command_records, work / "command.jsonl")
    clear_caches()
    command_alone, command_tokens = compressor_alone(compressor, command_records, budget, args.batch_size)
    command = command_run(command_path, work / "cli", args.method, args)
    rows.append([f"compressor alone, first {len(command_records)} records", len(command_records),
                 f"{command_alone:.1f}", f"{len(command_records) / command_alone:.1f}",
                 f"{command_tokens / command_alone:,.0f}", "-"])
    rows.append(["`ctxzip corpus` command on them (fresh process: start-up and model load included)",
                 command["records"], f"{command['seconds']:.1f}", f"{command['records'] / command['seconds']:.1f}",
                 f"{command['summary']['original_tokens'] / command['seconds']:,.0f}",
                 f"{command['seconds'] / command_alone * 100 - 100:+.1f}%"])

    if args.ray:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # actors start with empty caches
        ray_summary = job_in_process(command_path, work / "ray", args, engine="ray")
        ray.shutdown()
        seconds = ray_summary["this_run"]["seconds"]
        rows.append(["corpus job, Ray engine (local Ray, 2 CPUs, 1 model actor; actor start and model load included)",
                     ray_summary["records"], f"{seconds:.1f}", f"{ray_summary['records'] / seconds:.1f}",
                     f"{ray_summary['original_tokens'] / seconds:,.0f}", f"{seconds / command_alone * 100 - 100:+.1f}%"])

    small, large = args.memory_records
    all_records = hotpot_records(max(small, large))
    memory = []
    for count in (small, large):
        memory_path = write_jsonl(all_records[:count], work / f"memory-{count}.jsonl")
        run = command_run(memory_path, work / f"memory-{count}", "truncate", argparse.Namespace(**{**vars(args), "options": {}}))
        memory.append([run["records"], f"{memory_path.stat().st_size / 2**20:.1f}", f"{run['rss_mb']:.0f}",
                       f"{run['seconds']:.1f}"])

    target = "met" if overhead < 0.10 else "missed"
    markdown = f"""# Offline corpus compression: throughput and overhead

Input: {n:,} HotpotQA paragraphs (eval split, one record per paragraph with its question as the query),
{tokens:,} cl100k tokens; method `{args.method}` {json.dumps(args.options) if args.options else "(default options)"},
`--ratio {args.ratio}`, batches of {args.batch_size}, shards of {args.shard_size}. Command:
`flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.corpus_bench {' '.join(sys.argv[1:])}`.

## Job against the compressor alone

{markdown_table(["run", "records", "seconds", "records/s", "tokens/s (input)", "time vs compressor alone"], rows)}

Job overhead (local engine, in process, against the compressor's own batched throughput): **{overhead * 100:+.1f}%**
(target under 10%: **{target}**). The records were cut into {len(chunk_rows)} chunks; for each chunk the compressor
alone and then the job ran on it, so both sides saw the same load from the other jobs sharing this machine
(sizes of the differences between chunks show how much that load varied):

{markdown_table(["chunk", "records", "compressor alone (s)", "job (s)"], chunk_rows)}

The job's time includes counting the input for the progress bar's ETA, reading and parsing the JSONL,
writing {shards} shard files with fsync, the manifest after each shard, and the summary.
The command row adds interpreter start-up, imports and loading the model in a fresh process.

## Memory (method `truncate`, `ctxzip corpus` command, peak RSS of the process)

{markdown_table(["records", "input MiB", "peak RSS MiB", "seconds"], memory)}

Records stream through in shards; peak memory should not grow with the input.
"""
    print(write_results("corpus", markdown))


if __name__ == "__main__":
    main()
