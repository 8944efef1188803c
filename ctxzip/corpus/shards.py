"""The output folder of a corpus job: atomic shard files, per-shard error files and a manifest.

Shard k holds input records [k * shard_size, (k + 1) * shard_size), so reading the shards in order
gives the records in input order. A shard is finished when the manifest lists it; the manifest is
rewritten atomically after each shard's files are in place, so after a crash (even SIGKILL) a rerun
redoes only shards the manifest does not list, and a record is never lost or written twice.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ctxzip.corpus.io import write_atomically, write_json_atomically
from ctxzip.corpus.records import Compressed, Failed, Outcome
from ctxzip.errors import CtxzipError

MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
SUMMARY = "summary.json"
ERRORS_DIR = "_errors"
MANIFEST_VERSION = 1


class CorpusJobError(CtxzipError):
    """The output folder belongs to a different job, or cannot be used."""


@dataclass
class ShardStats:
    records: int = 0
    written: int = 0
    errors: int = 0
    original_tokens: int = 0
    compressed_tokens: int = 0

    def add(self, other: "ShardStats") -> None:
        for name in ("records", "written", "errors", "original_tokens", "compressed_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def shard_name(index: int, fmt: str) -> str:
    return f"part-{index:05d}.{fmt}"


@dataclass
class OutputFolder:
    """Where a job writes; `job` is the fingerprint that must match to resume."""

    root: Path
    job: dict[str, Any]
    output_format: str
    shards: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, job: dict[str, Any], output_format: str, overwrite: bool = False) -> "OutputFolder":
        """Resume the job found in `root`, or start a new one; refuse to mix two different jobs."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise CorpusJobError(f"output {root} exists and is not a folder")
        if overwrite and root.exists():
            cls._clear(root)
        root.mkdir(parents=True, exist_ok=True)
        manifest_path = root / MANIFEST
        folder = cls(root, job, output_format)
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest.get("job") != job:
                changed = sorted(k for k in set(job) | set(manifest.get("job", {}))
                                 if job.get(k) != manifest.get("job", {}).get(k))
                raise CorpusJobError(
                    f"{root} holds the output of a different job (differs in: {', '.join(changed)}); "
                    "use another output folder, or --overwrite to start again"
                )
            folder.shards = {int(k): v for k, v in manifest.get("shards", {}).items()}
        elif any(p.name != ERRORS_DIR and not p.name.startswith(".") for p in root.iterdir()):
            raise CorpusJobError(f"{root} is not empty and has no {MANIFEST}; refusing to write into it")
        folder._remove_leftovers()
        folder._save(complete=False)
        return folder

    @staticmethod
    def _clear(root: Path) -> None:
        if not (root / MANIFEST).exists() and any(root.iterdir()):
            raise CorpusJobError(f"--overwrite only clears folders written by ctxzip corpus; {root} has no {MANIFEST}")
        shutil.rmtree(root)

    def _remove_leftovers(self) -> None:
        """Temporary files and shards a killed run wrote but never recorded."""
        for path in list(self.root.glob(".*.tmp-*")) + list((self.root / ERRORS_DIR).glob(".*.tmp-*")):
            path.unlink(missing_ok=True)
        recorded = {entry["file"] for entry in self.shards.values()}
        for path in self.root.glob("part-*"):
            if path.name not in recorded:
                path.unlink()
        recorded_errors = {shard_name(i, "jsonl") for i in self.shards}
        for path in (self.root / ERRORS_DIR).glob("part-*"):
            if path.name not in recorded_errors:
                path.unlink()

    def is_done(self, index: int) -> bool:
        return index in self.shards

    def write_shard(self, index: int, first_position: int, outcomes: list[Outcome]) -> ShardStats:
        """Write shard `index` (records, then errors), then record it in the manifest."""
        stats = ShardStats(records=len(outcomes))
        records, errors = [], []
        for offset, outcome in enumerate(outcomes):
            if isinstance(outcome, Compressed):
                records.append(outcome.record)
                stats.written += 1
                stats.original_tokens += outcome.original_tokens
                stats.compressed_tokens += outcome.compressed_tokens
            else:
                assert isinstance(outcome, Failed)
                errors.append({"position": first_position + offset, "id": outcome.id, "reason": outcome.reason})
        stats.errors = len(errors)
        name = shard_name(index, self.output_format)
        if errors:
            (self.root / ERRORS_DIR).mkdir(exist_ok=True)
            write_atomically(self.root / ERRORS_DIR / shard_name(index, "jsonl"), errors, "jsonl")
        write_atomically(self.root / name, records, self.output_format)
        self.shards[index] = {"file": name, "first_position": first_position, **vars(stats)}
        self._save(complete=False)
        return stats

    def totals(self) -> ShardStats:
        total = ShardStats()
        for entry in self.shards.values():
            total.add(ShardStats(**{k: entry[k] for k in vars(ShardStats())}))
        return total

    def finish(self, summary: dict[str, Any]) -> None:
        """Gather the errors into one file in input order, write the summary, mark the job complete."""
        errors = []
        for index in sorted(self.shards):
            path = self.root / ERRORS_DIR / shard_name(index, "jsonl")
            if self.shards[index]["errors"] and path.exists():
                errors.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)
        write_atomically(self.root / ERRORS, errors, "jsonl")
        write_json_atomically(self.root / SUMMARY, summary)
        self._save(complete=True)

    def first_error(self) -> str:
        """The reason the first failed record gave, from the finished errors file."""
        with open(self.root / ERRORS, encoding="utf-8") as errors:
            first = errors.readline()
        return json.loads(first).get("reason", "unknown") if first.strip() else "unknown"

    def _save(self, complete: bool) -> None:
        manifest = {
            "version": MANIFEST_VERSION,
            "job": self.job,
            "complete": complete,
            "shards": {str(i): self.shards[i] for i in sorted(self.shards)},
        }
        write_json_atomically(self.root / MANIFEST, manifest)


def read_output(root: Path) -> Iterator[dict]:
    """The records of a finished (or partial) job folder, in input order."""
    from ctxzip.corpus.io import read_records

    root = Path(root)
    manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    for key in sorted(manifest["shards"], key=int):
        yield from read_records(root / manifest["shards"][key]["file"])
