"""Corpus jobs, local engine: formats in and out, order, budgets, spans, bad records, resuming."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ctxzip.budget import get_token_counter
from ctxzip.corpus import CorpusJob, run_corpus_job
from ctxzip.corpus.shards import CorpusJobError, read_output
from ctxzip.errors import InvalidBudgetError, InvalidInputError

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def make_records(n: int) -> list[dict]:
    """Records of varied length (some already under budget), each with an id, a query and extra fields."""
    records = []
    for i in range(n):
        words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(5 + (i * 13) % 60)]
        records.append({"id": f"r{i}", "text": f"Record {i}: " + " ".join(words) + ".", "q": WORDS[i % 12],
                        "meta": {"n": i}})
    return records


def write_jsonl(path, records, raw_lines=()):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")  # raw non-ASCII, U+2028 included
        for line in raw_lines:
            f.write(line + "\n")
    return path


def job(tmp_path, input_path, out="out", **kw):
    kw.setdefault("method", "truncate")
    kw.setdefault("budget", 12)
    kw.setdefault("shard_size", 7)
    kw.setdefault("progress", False)
    return CorpusJob(input_path, tmp_path / out, **kw)


def test_jsonl_job_keeps_order_budget_spans_and_fields(tmp_path):
    records = make_records(40)
    summary = run_corpus_job(job(tmp_path, write_jsonl(tmp_path / "in.jsonl", records), query_field="q"))
    out = list(read_output(tmp_path / "out"))
    assert [r["id"] for r in out] == [r["id"] for r in records]
    counter = get_token_counter("cl100k_base")
    compressed = 0
    for original, row in zip(records, out):
        info = row["ctxzip"]
        assert counter.count(row["text"]) == info["compressed_tokens"] <= 12
        assert info["original_tokens"] == counter.count(original["text"])
        # every kept span slices the original text, and together they are the output
        assert "".join(original["text"][s:e] for s, e in info["kept"]) == row["text"]
        assert row["q"] == original["q"] and row["meta"] == original["meta"]
        compressed += info["original_tokens"] > 12
    assert compressed > 20  # the budget did bite on most records
    assert summary["records"] == summary["written"] == 40 and summary["errors"] == 0
    assert summary["shards"] == 6
    assert summary["tokens_saved"] == sum(r["ctxzip"]["original_tokens"] - r["ctxzip"]["compressed_tokens"] for r in out)
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["complete"] is True


@pytest.mark.parametrize("in_name,out_format", [("in.jsonl.gz", "parquet"), ("in.parquet", "jsonl.gz"), ("in.parquet", None)])
def test_formats_in_and_out_give_the_same_records(tmp_path, in_name, out_format):
    records = make_records(30)
    reference = job(tmp_path, write_jsonl(tmp_path / "ref.jsonl", records), out="ref")
    run_corpus_job(reference)
    if in_name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(records), tmp_path / in_name, row_group_size=8)
    else:
        write_jsonl(tmp_path / in_name, records)
    run_corpus_job(job(tmp_path, tmp_path / in_name, output_format=out_format))
    expected_suffix = out_format or "parquet"
    assert all(p.name.endswith(expected_suffix) for p in (tmp_path / "out").glob("part-*"))
    assert list(read_output(tmp_path / "out")) == list(read_output(tmp_path / "ref"))


def test_bad_records_go_to_the_errors_file_and_the_job_goes_on(tmp_path):
    records = make_records(10)
    records[3]["text"] = 42
    del records[5]["text"]
    records[7]["text"] = "tiny"  # ratio 0.2 of 1 token resolves to 0 tokens: too small a budget
    path = write_jsonl(tmp_path / "in.jsonl", records, raw_lines=['{"id": "broken", "text": ', "[1, 2]"])
    summary = run_corpus_job(job(tmp_path, path, budget=None, ratio=0.2, shard_size=4))
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [(e["position"], e["id"]) for e in errors] == [(3, "r3"), (5, "r5"), (7, "r7"), (10, None), (11, None)]
    reasons = [e["reason"] for e in errors]
    assert "is int, not text" in reasons[0] and "missing field 'text'" in reasons[1]
    assert "BudgetTooSmallError" in reasons[2] and "not valid JSON" in reasons[3] and "JSON object" in reasons[4]
    assert [r["id"] for r in read_output(tmp_path / "out")] == [f"r{i}" for i in (0, 1, 2, 4, 6, 8, 9)]
    assert (summary["records"], summary["written"], summary["errors"]) == (12, 7, 5)


def test_rerun_of_a_finished_job_skips_every_shard(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", make_records(20))
    run_corpus_job(job(tmp_path, path))
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("part-*")}
    summary = run_corpus_job(job(tmp_path, path))
    assert summary["shards_resumed"] == summary["shards"] == 3 and summary["this_run"]["records"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("part-*")} == before


def test_output_of_another_job_or_a_foreign_folder_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", make_records(10))
    run_corpus_job(job(tmp_path, path))
    with pytest.raises(CorpusJobError, match="different job.*budget"):
        run_corpus_job(job(tmp_path, path, budget=5))
    assert run_corpus_job(job(tmp_path, path, budget=5, overwrite=True))["this_run"]["records"] == 10
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(CorpusJobError, match="not empty"):
        run_corpus_job(job(tmp_path, path, out="mine"))
    with pytest.raises(CorpusJobError, match="only clears"):
        run_corpus_job(job(tmp_path, path, out="mine", overwrite=True))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_bad_job_settings_raise_clear_errors(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", make_records(2))
    with pytest.raises(InvalidInputError, match="no such input"):
        job(tmp_path, tmp_path / "missing.jsonl")
    with pytest.raises(InvalidInputError, match="cannot tell the format"):
        job(tmp_path, (tmp_path / "in.csv").write_text("a,b") and tmp_path / "in.csv")
    with pytest.raises(InvalidBudgetError):
        job(tmp_path, path, budget=None)
    with pytest.raises(InvalidInputError, match="engine"):
        job(tmp_path, path, engine="spark")
    with pytest.raises(InvalidInputError, match="workers"):
        job(tmp_path, path, workers=0)


def test_worker_processes_give_the_same_output(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", make_records(30), raw_lines=["oops"])
    run_corpus_job(job(tmp_path, path, out="one"))
    summary = run_corpus_job(job(tmp_path, path, out="two", workers=2))
    assert summary["workers"] == 2
    assert list(read_output(tmp_path / "two")) == list(read_output(tmp_path / "one"))
    assert (tmp_path / "two" / "errors.jsonl").read_text() == (tmp_path / "one" / "errors.jsonl").read_text()


def test_cli_runs_a_job_and_reports_errors_in_one_line(tmp_path):
    from ctxzip.corpus.cli import app  # `ctxzip corpus` itself runs in test_corpus_crash.py

    path = write_jsonl(tmp_path / "in.jsonl", make_records(5))
    runner = CliRunner()
    result = runner.invoke(app, [str(path), str(tmp_path / "out"), "--method", "random",
                                 "--ratio", "0.5", "--option", "seed=3", "--no-progress", "--shard-size", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["records"] == 5 and summary["shards"] == 3 and summary["method"] == "random"
    bad = runner.invoke(app, [str(path), str(tmp_path / "o2"), "--method", "nope", "--budget", "5", "--no-progress"])
    assert bad.exit_code == 2 and "unknown method 'nope'" in bad.stderr
    assert not (tmp_path / "o2").exists()  # nothing written for a job that cannot run
    both = runner.invoke(app, [str(path), str(tmp_path / "o3"), "--method", "truncate", "--no-progress"])
    assert both.exit_code == 2 and "exactly one of" in both.stderr


class BatchCountingTruncate:
    """A compressor with `compress_many` that records the batch sizes it was given."""

    batches: list[int] = []

    def __init__(self):
        from ctxzip.compressors.truncate import TruncateCompressor

        self.inner = TruncateCompressor()

    def compress(self, inputs, query=None, budget=None):
        return self.inner.compress(inputs, query=query, budget=budget)

    def compress_many(self, items, budget=None):
        BatchCountingTruncate.batches.append(len(items))
        return [self.inner.compress(docs, query=query, budget=budget) for docs, query in items]


def test_records_are_compressed_in_batches_and_a_bad_one_does_not_sink_its_batch(tmp_path):
    records = make_records(23)
    records[5]["text"] = "x"  # ratio 0.5 of one token is zero tokens: this record fails inside its batch
    BatchCountingTruncate.batches = []
    run_corpus_job(job(tmp_path, write_jsonl(tmp_path / "in.jsonl", records), method="test_corpus:BatchCountingTruncate",
                       budget=None, ratio=0.5, batch_size=5, shard_size=10))
    assert BatchCountingTruncate.batches == [5, 5, 5, 5, 3]  # shards of 10 cut into batches of 5
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [(e["position"], e["id"]) for e in errors] == [(5, "r5")] and "BudgetTooSmallError" in errors[0]["reason"]
    assert [r["id"] for r in read_output(tmp_path / "out")] == [f"r{i}" for i in range(23) if i != 5]
