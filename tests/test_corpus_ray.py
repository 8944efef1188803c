"""The Ray engine (Ray Data on a small local Ray) gives the same records as the local engine."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctxzip.corpus import CorpusJob, run_corpus_job
from ctxzip.corpus.shards import read_output

from test_corpus import make_records, write_jsonl

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def run_both(tmp_path, path, **settings):
    settings = {"method": "truncate", "budget": 12, "shard_size": 9, "batch_size": 4, "progress": False, **settings}
    local = run_corpus_job(CorpusJob(path, tmp_path / "local", **settings))
    distributed = run_corpus_job(CorpusJob(path, tmp_path / "ray", engine="ray", **settings))
    return local, distributed


def test_ray_and_local_engines_give_the_same_records(local_ray, tmp_path):
    records = make_records(50)
    records[10]["text"] = None
    records[20]["text"] = "Line with a separator\u2028inside a JSON string stays one record."
    path = write_jsonl(tmp_path / "in.jsonl.gz", records, raw_lines=["{broken", ""])
    local, distributed = run_both(tmp_path, path, query_field="q")
    assert list(read_output(tmp_path / "ray")) == list(read_output(tmp_path / "local"))
    assert (tmp_path / "ray" / "errors.jsonl").read_text() == (tmp_path / "local" / "errors.jsonl").read_text()
    keys = ("records", "written", "errors", "original_tokens", "compressed_tokens", "shards")
    assert {k: distributed[k] for k in keys} == {k: local[k] for k in keys}
    assert distributed["engine"] == "ray" and distributed["errors"] == 2 and distributed["records"] == 51
    assert "\u2028" in next(r for r in read_output(tmp_path / "ray") if r["id"] == "r20")["text"]


def test_ray_engine_reads_parquet_and_resumes_a_local_job(local_ray, tmp_path):
    records = make_records(40)
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "in.parquet", row_group_size=7)
    local, _ = run_both(tmp_path, tmp_path / "in.parquet", output_format="jsonl")
    assert list(read_output(tmp_path / "ray")) == list(read_output(tmp_path / "local"))

    # a job half done by the local engine, finished by Ray: the finished shards are kept as they are
    manifest_path = tmp_path / "local" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"] = {k: v for k, v in manifest["shards"].items() if int(k) < 2}
    manifest_path.write_text(json.dumps(manifest))
    kept = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "local").glob("part-0000[01]*")}
    resumed = run_corpus_job(CorpusJob(tmp_path / "in.parquet", tmp_path / "local", method="truncate", budget=12,
                                       shard_size=9, batch_size=4, progress=False, output_format="jsonl", engine="ray"))
    assert resumed["shards_resumed"] == 2 and resumed["this_run"]["records"] == 40 - 18
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "local").glob("part-0000[01]*")} == kept
    assert list(read_output(tmp_path / "local")) == list(read_output(tmp_path / "ray"))
