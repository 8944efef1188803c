"""A corpus job killed with SIGKILL mid-way and rerun gives exactly the output of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ctxzip.compressors.truncate import TruncateCompressor
from ctxzip.corpus import CorpusJob, run_corpus_job
from ctxzip.corpus.shards import read_output

from test_corpus import make_records, write_jsonl

SLEEP_VARIABLE = "CTXZIP_TEST_SLEEP_PER_RECORD"


@dataclass
class SlowTruncate(TruncateCompressor):
    """Truncation that can be slowed down (by an environment variable) so a test can kill it mid-job."""

    def compress(self, inputs, query=None, budget=None):
        time.sleep(float(os.environ.get(SLEEP_VARIABLE, "0")))
        return super().compress(inputs, query=query, budget=budget)


METHOD = "test_corpus_crash:SlowTruncate"


def shards_done(manifest: Path) -> int:
    try:
        return len(json.loads(manifest.read_text())["shards"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_sigkill_mid_job_then_rerun_equals_an_uninterrupted_run(tmp_path):
    records = make_records(600)
    path = write_jsonl(tmp_path / "in.jsonl.gz", records, raw_lines=["not json", '{"id": "no-text"}'])
    settings = dict(method=METHOD, budget=10, shard_size=20, progress=False)

    reference = run_corpus_job(CorpusJob(path, tmp_path / "reference", **settings))

    env = {**os.environ, SLEEP_VARIABLE: "0.004", "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    command = [sys.executable, "-m", "ctxzip", "corpus", str(path), str(tmp_path / "crashed"), "--method", METHOD,
               "--budget", "10", "--shard-size", "20", "--no-progress"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = tmp_path / "crashed" / "manifest.json"
    deadline = time.monotonic() + 120
    while shards_done(manifest) < 5 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    finished_before_kill = shards_done(manifest)
    assert 5 <= finished_before_kill < reference["shards"], "the job must be killed in the middle"

    resumed = run_corpus_job(CorpusJob(path, tmp_path / "crashed", **settings))
    assert resumed["shards_resumed"] == finished_before_kill
    assert resumed["this_run"]["records"] == resumed["records"] - 20 * finished_before_kill

    crashed_out = list(read_output(tmp_path / "crashed"))
    assert crashed_out == list(read_output(tmp_path / "reference"))
    ids = [r["id"] for r in crashed_out]
    assert ids == [r["id"] for r in records]  # none missing, none repeated, in input order
    for name in ("errors.jsonl",):
        assert (tmp_path / "crashed" / name).read_text() == (tmp_path / "reference" / name).read_text()
    assert len((tmp_path / "crashed" / "errors.jsonl").read_text().splitlines()) == 2
    assert not list((tmp_path / "crashed").glob(".*tmp*"))
    keys = ("records", "written", "errors", "original_tokens", "compressed_tokens", "shards")
    assert {k: resumed[k] for k in keys} == {k: reference[k] for k in keys}
