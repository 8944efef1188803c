"""Fuzzing the corpus reader: any broken records, and every input record ends up exactly once,
either in the output shards or in errors.jsonl."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ctxzip.corpus import CorpusJob, CorpusJobError, read_output, run_corpus_job
from tests.support.fuzz import examples, valid_text

GOOD = st.builds(lambda i, t: json.dumps({"id": i, "text": t or "word"}, ensure_ascii=False).encode(),
                 st.integers(0, 10**6), valid_text)
BROKEN = st.one_of(
    st.binary(max_size=40),  # not JSON, maybe not UTF-8
    st.sampled_from([b"[1, 2]", b"null", b'"text"', b"{}", b'{"text": 5}', b'{"text": null, "id": 1}',
                     b'{"id": 1, "txt": "typo"}', b'{"text": "half', b'{"text": "\\ud800 lone"}', b'{"text": "\\u0000"}',
                     b"[" * 5000 + b"]" * 5000, b'{"text": "' + b"x" * 20000 + b'"}', b"\xef\xbb\xbf{}"]),
)
LINES = st.lists(st.integers(1, 4).flatmap(lambda k: BROKEN if k == 1 else GOOD), min_size=1, max_size=25)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck))
@given(lines=LINES, shard_size=st.integers(1, 7))
def test_every_record_is_written_or_reported_once(lines, shard_size):
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.jsonl"
        source.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        job = CorpusJob(source, Path(folder) / "out", "truncate", budget=8, shard_size=shard_size, progress=False)
        try:
            summary = run_corpus_job(job)
            event("finished")
        except CorpusJobError as error:
            assert "every record failed" in str(error)
            event("every record failed")
            summary = json.loads((Path(folder) / "out" / "summary.json").read_text())
        written = list(read_output(Path(folder) / "out"))
        errors = [json.loads(x) for x in (Path(folder) / "out" / "errors.jsonl").read_text().splitlines() if x]
        records_in_file = sum(1 for line in source.read_bytes().split(b"\n") if line.strip())  # blank lines are not records
        assert summary["records"] == len(written) + len(errors) == records_in_file
        assert len({e["position"] for e in errors}) == len(errors)
