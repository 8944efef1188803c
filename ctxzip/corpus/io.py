"""Reading and writing corpus files: JSONL, gzipped JSONL and Parquet, streamed.

Readers yield *raw* records (a JSONL line, or a Parquet row as a dict) so that a resumed job can skip
finished shards without parsing them, and so that parsing happens where the compression happens.
Writers write a whole shard to a temporary file and rename it into place, so a shard file is either
complete or absent.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ctxzip.errors import InvalidInputError

FORMATS = ("jsonl", "jsonl.gz", "parquet")
_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".jsonl.gz": "jsonl.gz", ".ndjson.gz": "jsonl.gz",
    ".parquet": "parquet", ".pq": "parquet",
}
PARQUET_READ_BATCH = 1024


def detect_format(path: str | Path) -> str:
    """The corpus format from a file name: .jsonl/.ndjson, .jsonl.gz, .parquet."""
    name = Path(path).name.lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return _SUFFIXES[suffix]
    raise InvalidInputError(
        f"cannot tell the format of {str(path)!r}: expected a name ending in .jsonl, .jsonl.gz or .parquet"
    )


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def _open_bytes(path: Path, fmt: str):
    return gzip.open(path, "rb") if fmt == "jsonl.gz" else open(path, "rb")


def iter_raw_records(path: Path, fmt: str) -> Iterator[bytes | dict]:
    """Records in file order: JSONL lines as bytes (blank lines skipped) or Parquet rows, in constant
    memory. Lines are decoded one by one in `parse_record`, so a line that is not UTF-8 is one bad
    record, not the end of the job."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_READ_BATCH):
            yield from batch.to_pylist()
        return
    try:
        with _open_bytes(path, fmt) as lines:
            for line in lines:
                if line.strip():
                    yield line
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"{path} cannot be read as {fmt}: {exc}") from exc


def count_records(path: Path, fmt: str) -> int:
    """How many records `iter_raw_records` will yield (Parquet: from the footer; JSONL: one pass)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return sum(1 for _ in iter_raw_records(path, fmt))


@dataclass(frozen=True)
class BadRecord:
    """An input record that could not be parsed; it goes to the errors file."""

    reason: str


def parse_record(raw: str | bytes | dict) -> dict | BadRecord:
    """A JSONL line (or a Parquet row) as a dict, or the reason it is not a record."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return BadRecord(f"not UTF-8 text: byte {exc.start} is {raw[exc.start:exc.start + 1]!r}")
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        return BadRecord(f"not valid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return BadRecord("not valid JSON: nested too deeply")
    if not isinstance(record, dict):
        return BadRecord(f"a record must be a JSON object, got {type(record).__name__}")
    return record


def _json_line(record: dict[str, Any]) -> str:
    # default=str: Parquet rows may hold dates or decimals that JSON has no type for.
    return json.dumps(record, ensure_ascii=False, default=str) + "\n"


def write_atomically(path: Path, records: list[dict[str, Any]], fmt: str) -> None:
    """Write all `records` to `path` through a temporary file, fsync, then rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(records), tmp)
        else:
            with open(tmp, "wb") as raw:
                # mtime=0 and no file name: the same records always give the same bytes.
                stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") if fmt == "jsonl.gz" else raw
                stream.write("".join(_json_line(r) for r in records).encode("utf-8"))
                if stream is not raw:
                    stream.close()
        with open(tmp, "rb") as done:
            os.fsync(done.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_directory(path.parent)


def write_json_atomically(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


def fsync_directory(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_records(path: Path, fmt: str | None = None) -> Iterator[dict]:
    """Parsed records of one file (for reading results back; bad lines raise)."""
    fmt = fmt or detect_format(path)
    for raw in iter_raw_records(Path(path), fmt):
        record = parse_record(raw)
        if isinstance(record, BadRecord):
            raise InvalidInputError(f"{path}: {record.reason}")
        yield record
