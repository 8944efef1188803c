"""Offline corpus compression: a JSONL / gzipped JSONL / Parquet file in, compressed shards out.

    from ctxzip.corpus import CorpusJob, run_corpus_job
    summary = run_corpus_job(CorpusJob("docs.jsonl", "out/", method="extractive", budget=200))

Records stream through in shards of `shard_size`; each shard is compressed in batches (one model
forward per batch when the compressor has `compress_many`) and written atomically, then listed in
the manifest, so rerunning the same job after a crash skips finished shards. Records that cannot be
compressed go to `errors.jsonl` with the reason; the job goes on. Engines: "local" (this process, or
`workers` processes) and "ray" (Ray Data, see `ctxzip.corpus.ray_engine`).
"""

from __future__ import annotations

import itertools
import json
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ctxzip.budget import DEFAULT_TOKENIZER, Budget
from ctxzip.corpus.io import check_format, count_records, detect_format, iter_raw_records
from ctxzip.corpus.progress import JobProgress
from ctxzip.corpus.records import RecordCompressor, RecordSpec, compressor_class
from ctxzip.corpus.shards import ERRORS, CorpusJobError, OutputFolder, ShardStats, read_output
from ctxzip.errors import InvalidBudgetError, InvalidInputError

ENGINES = ("local", "ray")

__all__ = ["CorpusJob", "CorpusJobError", "run_corpus_job", "read_output"]


@dataclass
class CorpusJob:
    """One compression job over a corpus file. Give exactly one of `budget` (tokens) or `ratio`."""

    input: str | Path
    output: str | Path
    method: str
    budget: int | None = None
    ratio: float | None = None
    tokenizer: str = DEFAULT_TOKENIZER
    method_options: dict[str, Any] = field(default_factory=dict)
    text_field: str = "text"
    id_field: str = "id"
    query_field: str | None = None
    output_field: str | None = None
    input_format: str | None = None
    output_format: str | None = None  # default: the input's format
    shard_size: int = 1000
    batch_size: int = 32
    engine: str = "local"
    workers: int = 1
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.input, self.output = Path(self.input), Path(self.output)
        if not self.input.is_file():
            raise InvalidInputError(f"no such input file: {self.input}")
        self.input_format = check_format(self.input_format or detect_format(self.input))
        self.output_format = check_format(self.output_format or self.input_format)
        if self.engine not in ENGINES:
            raise InvalidInputError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        for name in ("shard_size", "batch_size", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        if (self.budget is None) == (self.ratio is None):
            raise InvalidBudgetError("give exactly one of budget (tokens per record) or ratio")

    def record_spec(self) -> RecordSpec:
        budget = (Budget(tokens=self.budget, tokenizer=self.tokenizer) if self.budget is not None
                  else Budget(ratio=self.ratio, tokenizer=self.tokenizer))
        return RecordSpec(self.method, budget, dict(self.method_options), self.text_field, self.id_field,
                          self.query_field, self.output_field)

    def fingerprint(self) -> dict[str, Any]:
        """What must be equal for a rerun to resume this job's output (engine and workers may differ)."""
        stat = self.input.stat()
        fingerprint = {
            "input": str(self.input.resolve()), "input_size": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
            "input_format": self.input_format, "output_format": self.output_format,
            "method": self.method, "method_options": self.method_options,
            "budget": self.budget, "ratio": self.ratio, "tokenizer": self.tokenizer,
            "text_field": self.text_field, "id_field": self.id_field, "query_field": self.query_field,
            "output_field": self.output_field, "shard_size": self.shard_size,
        }
        # As the manifest will read it back (tuples become lists), so a rerun compares equal.
        return json.loads(json.dumps(fingerprint, default=str))


def run_corpus_job(job: CorpusJob) -> dict[str, Any]:
    """Run (or resume) `job`; returns the summary that is also written to OUT/summary.json."""
    spec = job.record_spec()
    # Fail early on an unknown tokenizer or method, before any file is touched.
    spec.budget.counter
    compressor_class(spec.method)
    folder = OutputFolder.open(job.output, job.fingerprint(), job.output_format, overwrite=job.overwrite)
    skipped = len(folder.shards)
    before = folder.totals()
    total = count_records(job.input, job.input_format) if job.progress else None
    started = time.perf_counter()
    with JobProgress(job.progress, total, before) as progress:
        if job.engine == "ray":
            from ctxzip.corpus.ray_engine import run_on_ray

            run_on_ray(job, spec, folder, progress)
        elif job.workers > 1:
            _run_in_processes(job, spec, folder, progress)
        else:
            _run_in_process(job, spec, folder, progress)
    seconds = time.perf_counter() - started
    summary = _summary(job, folder, before, skipped, seconds)
    folder.finish(summary)
    if summary["records"] and not summary["written"]:
        raise CorpusJobError(
            f"every record failed ({summary['errors']} of {summary['records']}), for example: "
            f"{folder.first_error()} (all reasons in {job.output / ERRORS})"
        )
    return summary


def iter_shards(job: CorpusJob) -> Iterator[tuple[int, int, list]]:
    """(shard index, position of its first record, raw records) in input order."""
    records = iter_raw_records(job.input, job.input_format)
    for index in itertools.count():
        raws = list(itertools.islice(records, job.shard_size))
        if not raws:
            return
        yield index, index * job.shard_size, raws


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _run_in_process(job: CorpusJob, spec: RecordSpec, folder: OutputFolder, progress: JobProgress) -> None:
    compressor: RecordCompressor | None = None
    for index, first, raws in iter_shards(job):
        if folder.is_done(index):
            continue
        compressor = compressor or RecordCompressor(spec)  # load the model only if there is work
        outcomes = []
        for batch in _batches(raws, job.batch_size):
            done = compressor.compress_raw(batch)
            outcomes.extend(done)
            progress.advance_outcomes(done)
        folder.write_shard(index, first, outcomes)


# --- several local processes ------------------------------------------------------------------

_worker: RecordCompressor | None = None


def _init_worker(spec: RecordSpec) -> None:
    global _worker
    _worker = RecordCompressor(spec)


def _compress_shard(raws: list, batch_size: int) -> list:
    return [outcome for batch in _batches(raws, batch_size) for outcome in _worker.compress_raw(batch)]


def _run_in_processes(job: CorpusJob, spec: RecordSpec, folder: OutputFolder, progress: JobProgress) -> None:
    """Shards go to `workers` processes (each loads the model once); the parent writes every shard,
    at most `workers + 1` shards in flight so memory stays bounded."""
    import multiprocessing

    # spawn, not fork: a forked copy of a process holding torch threads can deadlock.
    context = multiprocessing.get_context("spawn")
    in_flight: dict = {}
    with ProcessPoolExecutor(job.workers, mp_context=context, initializer=_init_worker, initargs=(spec,)) as pool:

        def collect(block: bool) -> None:
            done, _ = wait(in_flight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in done:
                index, first = in_flight.pop(future)
                outcomes = future.result()
                folder.write_shard(index, first, outcomes)
                progress.advance_outcomes(outcomes)

        for index, first, raws in iter_shards(job):
            if folder.is_done(index):
                continue
            while len(in_flight) > job.workers:
                collect(block=True)
            in_flight[pool.submit(_compress_shard, raws, job.batch_size)] = (index, first)
            collect(block=False)
        while in_flight:
            collect(block=True)


def _summary(job: CorpusJob, folder: OutputFolder, before: ShardStats, skipped: int, seconds: float) -> dict:
    total = folder.totals()
    this_run = ShardStats()
    this_run.add(total)
    for name in vars(this_run):
        setattr(this_run, name, getattr(total, name) - getattr(before, name))
    return {
        "input": str(job.input), "output": str(job.output), "engine": job.engine, "workers": job.workers,
        "method": job.method, "budget": job.budget, "ratio": job.ratio, "tokenizer": job.tokenizer,
        "records": total.records, "written": total.written, "errors": total.errors,
        "original_tokens": total.original_tokens, "compressed_tokens": total.compressed_tokens,
        "tokens_saved": total.original_tokens - total.compressed_tokens,
        "ratio_achieved": (total.compressed_tokens / total.original_tokens) if total.original_tokens else 1.0,
        "shards": len(folder.shards), "shards_resumed": skipped,
        "this_run": {
            "records": this_run.records, "seconds": round(seconds, 3),
            "records_per_s": round(this_run.records / seconds, 2) if seconds > 0 else None,
            "tokens_per_s": round(this_run.original_tokens / seconds, 1) if seconds > 0 else None,
        },
    }
