"""The Ray engine of corpus jobs: Ray Data reads the input, an actor pool holding the model
compresses batches (`map_batches`), and the driver writes the same atomic shards and manifest as the
local engine, so the output, the errors file and resuming are identical whichever engine ran.

With a Ray cluster (`RAY_ADDRESS` set, or `ray.init` called before) the reading and the model work
spread over its machines unchanged; the driver needs the input and output paths to be reachable.
A resumed job skips writing finished shards but reads and compresses the whole input again.
"""

from __future__ import annotations

import pickle
from typing import Iterator

from ctxzip.corpus.records import RecordCompressor, RecordSpec

READ_CHUNK_BYTES = 1 << 20
LINES_PER_BLOCK = 4096
RAW_COLUMN = "raw"
OUTCOME_COLUMN = "outcome"


def _jsonl_datasource(paths: list[str]):
    from ray.data.datasource import FileBasedDatasource

    class JsonLinesDatasource(FileBasedDatasource):
        """Raw JSONL lines, read in chunks. Split on "\\n" only: `ray.data.read_text` uses
        `str.splitlines`, which also breaks lines at U+2028 inside JSON strings."""

        def _read_stream(self, f, path: str) -> Iterator:
            import pyarrow as pa

            pending, lines = b"", []
            while True:
                chunk = f.read(READ_CHUNK_BYTES)
                if not chunk:
                    break
                *complete, pending = (pending + chunk).split(b"\n")
                lines.extend(line for line in complete if line.strip())  # decoded per record, later
                if len(lines) >= LINES_PER_BLOCK:
                    yield pa.table({RAW_COLUMN: lines})
                    lines = []
            if pending.strip():
                lines.append(pending)
            if lines:
                yield pa.table({RAW_COLUMN: lines})

    return JsonLinesDatasource(paths)


class CompressBatch:
    """A Ray actor holding one `RecordCompressor` (so the model loads once per actor)."""

    def __init__(self, spec: RecordSpec, jsonl: bool) -> None:
        self.compressor = RecordCompressor(spec)
        self.jsonl = jsonl

    def __call__(self, batch):
        import pyarrow as pa

        raws = batch.column(RAW_COLUMN).to_pylist() if self.jsonl else batch.to_pylist()
        outcomes = self.compressor.compress_raw(raws)
        # Pickled so any record (Parquet types included) crosses Ray unchanged, one row per input row.
        return pa.table({OUTCOME_COLUMN: pa.array([pickle.dumps(o) for o in outcomes], pa.binary())})


def run_on_ray(job, spec: RecordSpec, folder, progress) -> None:
    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # output in input order
    path = str(job.input.resolve())
    jsonl = job.input_format != "parquet"
    dataset = ray.data.read_datasource(_jsonl_datasource([path])) if jsonl else ray.data.read_parquet(path)
    compressed = dataset.map_batches(
        CompressBatch, fn_constructor_args=(spec, jsonl), batch_size=job.batch_size,
        batch_format="pyarrow", concurrency=job.workers,
    )
    index, shard = 0, []
    for batch in compressed.iter_batches(batch_size=job.batch_size, batch_format="pyarrow"):
        new = []  # outcomes of shards not finished by an earlier run
        for blob in batch.column(OUTCOME_COLUMN).to_pylist():
            shard.append(pickle.loads(blob))
            if not folder.is_done(index):
                new.append(shard[-1])
            if len(shard) == job.shard_size:
                if not folder.is_done(index):
                    folder.write_shard(index, index * job.shard_size, shard)
                index, shard = index + 1, []
        progress.advance_outcomes(new)
    if shard and not folder.is_done(index):
        folder.write_shard(index, index * job.shard_size, shard)
